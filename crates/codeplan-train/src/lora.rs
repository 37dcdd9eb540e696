//! LoRA: a frozen linear layer plus a trained low-rank update `B·A·(α/r)`.

use std::str::FromStr;

use candle_core::{Tensor, Var};
use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::ops::LoraUpdate;

/// The linear layers of a block that can carry an adapter, by their Hugging Face module names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// `self_attn.q_proj`
    QProj,
    /// `self_attn.k_proj`
    KProj,
    /// `self_attn.v_proj`
    VProj,
    /// `self_attn.o_proj`
    OProj,
    /// `mlp.gate_proj`
    GateProj,
    /// `mlp.up_proj`
    UpProj,
    /// `mlp.down_proj`
    DownProj,
}

impl LoraTarget {
    /// Every target: LoRA on all linear layers (QLoRA's recommendation, and the issue's).
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    /// The module name as PEFT's `target_modules` spells it.
    pub fn module(self) -> &'static str {
        match self {
            LoraTarget::QProj => "q_proj",
            LoraTarget::KProj => "k_proj",
            LoraTarget::VProj => "v_proj",
            LoraTarget::OProj => "o_proj",
            LoraTarget::GateProj => "gate_proj",
            LoraTarget::UpProj => "up_proj",
            LoraTarget::DownProj => "down_proj",
        }
    }
}

impl FromStr for LoraTarget {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        LoraTarget::ALL
            .into_iter()
            .find(|t| t.module() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = LoraTarget::ALL.iter().map(|t| t.module()).collect();
                TrainError::Input(format!(
                    "unknown LoRA target module `{s}` (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// LoRA settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f32,
    /// Dropout on the adapter's input while training.
    pub dropout: f32,
    /// Layers that carry an adapter.
    pub targets: Vec<LoraTarget>,
}

/// One adapter: `A (rank, in)` initialised as PEFT does (Kaiming-uniform), `B (out, rank)`
/// zero, so training starts from the base model exactly.
pub struct Adapter {
    /// Down-projection `A`.
    pub a: Var,
    /// Up-projection `B`.
    pub b: Var,
    /// `alpha / rank`.
    pub scale: f64,
    /// Dropout probability on the input.
    pub dropout: f32,
}

impl Adapter {
    /// A fresh adapter for a `(out, in)` layer.
    pub fn new(spec: &LoraSpec, out: usize, inp: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        // kaiming_uniform_(a=√5) on (rank, in) draws from U(−1/√in, 1/√in).
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = (0..spec.rank * inp)
            .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * bound)
            .collect();
        let dev = candle_core::Device::Cpu;
        Ok(Adapter {
            a: Var::from_tensor(&Tensor::from_vec(a, (spec.rank, inp), &dev)?)?,
            b: Var::zeros((out, spec.rank), candle_core::DType::F32, &dev)?,
            scale: spec.alpha as f64 / spec.rank as f64,
            dropout: spec.dropout,
        })
    }

    /// The update for an input of `elements` values, its dropout mask drawn from `rng` while
    /// training (`None`: no dropout).
    pub fn update(&self, elements: usize, rng: Option<&mut ChaCha8Rng>) -> LoraUpdate<'_> {
        let dropout_mask = match rng {
            Some(rng) if self.dropout > 0.0 => {
                let keep = 1.0 - self.dropout;
                let mask: Vec<f32> = (0..elements)
                    .map(|_| {
                        if (rng.next_u32() as f32 / u32::MAX as f32) < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Some(std::sync::Arc::new(mask))
            }
            _ => None,
        };
        LoraUpdate {
            a: self.a.as_tensor(),
            b: self.b.as_tensor(),
            scale: self.scale as f32,
            dropout_mask,
        }
    }

    /// The dense update `B·A·scale` `(out, in)`, for merging into the base weight.
    pub fn delta(&self) -> Result<Tensor> {
        Ok((self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?)
    }
}
