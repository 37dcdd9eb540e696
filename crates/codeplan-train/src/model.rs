//! The student as trainable modules: the Llama/Qwen2 decoder built from [`crate::ops`], with
//! every weight either frozen (no gradient is ever computed for it) or trained.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use codeplan_model::DecoderConfig;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::base::BaseWeights;
use crate::error::{Result, TrainError};
use crate::lora::{Adapter, LoraSpec, LoraTarget};
use crate::ops::{
    causal_attention, frozen_linear, linear_cross_entropy, rms_norm, rope, swiglu, trained_linear,
    AttentionShape, CrossEntropyOutput, RopeTable,
};

/// What training changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Every weight is trained.
    Full,
    /// The base is frozen; adapters are trained.
    Lora(LoraSpec),
}

/// A weight that is trained or frozen.
pub enum Weight {
    /// Fixed; ops skip its gradient.
    Frozen(Tensor),
    /// Updated by the optimiser.
    Trained(Var),
}

impl Weight {
    fn new(t: &Tensor, trained: bool) -> Result<Self> {
        Ok(if trained {
            Weight::Trained(Var::from_tensor(t)?)
        } else {
            Weight::Frozen(t.clone())
        })
    }

    /// The current value.
    pub fn tensor(&self) -> &Tensor {
        match self {
            Weight::Frozen(t) => t,
            Weight::Trained(v) => v.as_tensor(),
        }
    }
}

/// A linear layer with an optional bias and an optional LoRA adapter.
pub struct Proj {
    /// Hugging Face module name (`model.layers.0.self_attn.q_proj`).
    pub name: String,
    /// `(out, in)`.
    pub weight: Weight,
    /// `(out)`.
    pub bias: Option<Weight>,
    /// The trained update, in LoRA mode.
    pub adapter: Option<Adapter>,
}

impl Proj {
    fn forward(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let update = self.adapter.as_ref().map(|a| a.update(x.elem_count(), rng));
        match (&self.weight, &self.bias) {
            (Weight::Frozen(w), Some(Weight::Frozen(b))) => {
                Ok(frozen_linear(x, w, Some(b), update)?)
            }
            (Weight::Frozen(w), None) => Ok(frozen_linear(x, w, None, update)?),
            (w, bias) => {
                let mut y = trained_linear(x, w.tensor())?;
                if let Some(b) = bias {
                    y = y.broadcast_add(b.tensor())?;
                }
                Ok(y)
            }
        }
    }
}

/// One transformer block.
pub struct Layer {
    /// RMSNorm before attention.
    pub attn_norm: Weight,
    /// Query, key, value and output projections.
    pub q: Proj,
    /// Key projection.
    pub k: Proj,
    /// Value projection.
    pub v: Proj,
    /// Output projection.
    pub o: Proj,
    /// RMSNorm before the MLP.
    pub ffn_norm: Weight,
    /// MLP gate projection.
    pub gate: Proj,
    /// MLP up projection.
    pub up: Proj,
    /// MLP down projection.
    pub down: Proj,
}

/// A batch of token rows ready for the model: `batch` rows of `seq_len` tokens, flattened.
#[derive(Clone, Debug)]
pub struct TokenBatch {
    /// Rows.
    pub batch: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Input ids, `batch · seq_len`.
    pub ids: Vec<u32>,
    /// Position of each token within its document.
    pub positions: Arc<Vec<u32>>,
    /// Document of each token within its row (packed documents do not attend to each other).
    pub segments: Arc<Vec<u32>>,
    /// The token each position must predict.
    pub targets: Arc<Vec<u32>>,
    /// Loss weight of each position (0 for prompt tokens and padding).
    pub weights: Arc<Vec<f32>>,
    /// With a separate plan head: the plan task's positions' weights (and `weights` then holds
    /// only the code task's).
    pub plan_weights: Option<Arc<Vec<f32>>>,
}

/// The trainable decoder.
pub struct TrainableModel {
    config: DecoderConfig,
    mode: Mode,
    /// Token embeddings `(vocab, hidden)`.
    pub embed: Weight,
    /// The blocks.
    pub layers: Vec<Layer>,
    /// Final RMSNorm.
    pub norm: Weight,
    /// Output head `(vocab, hidden)`; `None` when tied to the embeddings.
    pub head: Option<Weight>,
    /// A separate, trained head for the plan task (the paper's ablation), initialised as a copy
    /// of the output head; inference never uses it.
    pub plan_head: Option<Var>,
    rope: Arc<RopeTable>,
}

impl TrainableModel {
    /// Builds the model from base weights: everything trained in [`Mode::Full`]; in
    /// [`Mode::Lora`] the base frozen and seeded adapters on the target layers.
    pub fn new(base: &BaseWeights, mode: Mode, seed: u64) -> Result<Self> {
        let c = base.config.clone();
        let full = mode == Mode::Full;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = match &mode {
            Mode::Lora(spec) => {
                if spec.rank == 0 || spec.targets.is_empty() {
                    return Err(TrainError::Input(
                        "LoRA needs a rank ≥ 1 and at least one target module".into(),
                    ));
                }
                if !(0.0..1.0).contains(&spec.dropout) {
                    return Err(TrainError::Input(format!(
                        "LoRA dropout must be in [0, 1), got {}",
                        spec.dropout
                    )));
                }
                Some(spec)
            }
            Mode::Full => None,
        };
        let mut proj = |module: &str, target: LoraTarget| -> Result<Proj> {
            let w = base.get(&format!("{module}.weight"))?;
            let bias = match base.tensors.get(&format!("{module}.bias")) {
                Some(b) => Some(Weight::new(b, full)?),
                None => None,
            };
            let adapter = match spec {
                Some(spec) if spec.targets.contains(&target) => {
                    let (out, inp) = w.dims2()?;
                    Some(Adapter::new(spec, out, inp, &mut rng)?)
                }
                _ => None,
            };
            Ok(Proj {
                name: module.to_owned(),
                weight: Weight::new(w, full)?,
                bias,
                adapter,
            })
        };
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            layers.push(Layer {
                attn_norm: Weight::new(base.get(&format!("{p}.input_layernorm.weight"))?, full)?,
                q: proj(&format!("{p}.self_attn.q_proj"), LoraTarget::QProj)?,
                k: proj(&format!("{p}.self_attn.k_proj"), LoraTarget::KProj)?,
                v: proj(&format!("{p}.self_attn.v_proj"), LoraTarget::VProj)?,
                o: proj(&format!("{p}.self_attn.o_proj"), LoraTarget::OProj)?,
                ffn_norm: Weight::new(
                    base.get(&format!("{p}.post_attention_layernorm.weight"))?,
                    full,
                )?,
                gate: proj(&format!("{p}.mlp.gate_proj"), LoraTarget::GateProj)?,
                up: proj(&format!("{p}.mlp.up_proj"), LoraTarget::UpProj)?,
                down: proj(&format!("{p}.mlp.down_proj"), LoraTarget::DownProj)?,
            });
        }
        let head = if base.tied_embeddings {
            None
        } else {
            Some(Weight::new(base.get("lm_head.weight")?, full)?)
        };
        Ok(TrainableModel {
            rope: Arc::new(RopeTable::new(c.head_dim, c.rope_theta, c.context_length)),
            embed: Weight::new(base.get("model.embed_tokens.weight")?, full)?,
            norm: Weight::new(base.get("model.norm.weight")?, full)?,
            head,
            plan_head: None,
            layers,
            config: c,
            mode,
        })
    }

    /// Adds a separate head for the plan task, a trained copy of the output head.
    pub fn add_plan_head(&mut self) -> Result<()> {
        self.plan_head = Some(Var::from_tensor(self.head().tensor())?);
        Ok(())
    }

    /// The decoder's shape.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Full or LoRA.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The output head `(vocab, hidden)` (the embeddings when tied).
    pub fn head(&self) -> &Weight {
        self.head.as_ref().unwrap_or(&self.embed)
    }

    /// Every trained tensor by name: Hugging Face parameter names in full mode, and
    /// `<module>.lora_A.weight` / `<module>.lora_B.weight` for adapters.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        let mut weight = |name: String, w: &Weight| {
            if let Weight::Trained(v) = w {
                out.push((name, v.clone()));
            }
        };
        weight("model.embed_tokens.weight".into(), &self.embed);
        let mut adapters = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            weight(
                format!("model.layers.{i}.input_layernorm.weight"),
                &l.attn_norm,
            );
            weight(
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                &l.ffn_norm,
            );
            for p in l.projections() {
                weight(format!("{}.weight", p.name), &p.weight);
                if let Some(b) = &p.bias {
                    weight(format!("{}.bias", p.name), b);
                }
                if let Some(a) = &p.adapter {
                    adapters.push((format!("{}.lora_A.weight", p.name), a.a.clone()));
                    adapters.push((format!("{}.lora_B.weight", p.name), a.b.clone()));
                }
            }
        }
        weight("model.norm.weight".into(), &self.norm);
        if let Some(h) = &self.head {
            weight("lm_head.weight".into(), h);
        }
        if let Some(p) = &self.plan_head {
            out.push(("plan_head.weight".into(), p.clone()));
        }
        out.extend(adapters);
        out
    }

    /// Final hidden states `(tokens, hidden)` of a batch. `dropout_rng` turns LoRA dropout on.
    pub fn hidden(
        &self,
        batch: &TokenBatch,
        mut dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let tokens = batch.batch * batch.seq_len;
        if batch.ids.len() != tokens
            || batch.positions.len() != tokens
            || batch.segments.len() != tokens
        {
            return Err(TrainError::Input(format!(
                "a batch of {}×{} needs {tokens} ids, positions and segments",
                batch.batch, batch.seq_len
            )));
        }
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(TrainError::Input(format!(
                "token id {id} is outside the model's vocabulary ({})",
                c.vocab_size
            )));
        }
        let ids = Tensor::from_vec(batch.ids.clone(), tokens, &Device::Cpu)?;
        let mut h = self.embed.tensor().index_select(&ids, 0)?;
        let shape = AttentionShape {
            batch: batch.batch,
            seq_len: batch.seq_len,
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
        };
        for l in &self.layers {
            let x = rms_norm(&h, l.attn_norm.tensor(), c.rms_norm_eps)?;
            let q = l.q.forward(&x, dropout_rng.as_deref_mut())?;
            let k = l.k.forward(&x, dropout_rng.as_deref_mut())?;
            let v = l.v.forward(&x, dropout_rng.as_deref_mut())?;
            let q = rope(&q, &self.rope, &batch.positions)?;
            let k = rope(&k, &self.rope, &batch.positions)?;
            let a = causal_attention(&q, &k, &v, shape, &batch.segments)?;
            h = (h + l.o.forward(&a, dropout_rng.as_deref_mut())?)?;
            let x = rms_norm(&h, l.ffn_norm.tensor(), c.rms_norm_eps)?;
            let g = l.gate.forward(&x, dropout_rng.as_deref_mut())?;
            let u = l.up.forward(&x, dropout_rng.as_deref_mut())?;
            let m = swiglu(&g, &u)?;
            h = (h + l.down.forward(&m, dropout_rng.as_deref_mut())?)?;
        }
        Ok(rms_norm(&h, self.norm.tensor(), c.rms_norm_eps)?)
    }

    /// The weighted loss of a batch (see [`TokenBatch::weights`]); with `with_grad` ready for
    /// `backward()`.
    pub fn loss(
        &self,
        batch: &TokenBatch,
        dropout_rng: Option<&mut ChaCha8Rng>,
        with_grad: bool,
    ) -> Result<CrossEntropyOutput> {
        let h = self.hidden(batch, dropout_rng)?;
        let head = self.head().tensor();
        match (&self.plan_head, &batch.plan_weights) {
            (Some(plan_head), Some(plan_weights)) => {
                // Code rows through the output head, plan rows through the plan head; rows of
                // weight 0 cost nothing, so each head only sees its own task's tokens.
                let code =
                    linear_cross_entropy(&h, head, &batch.targets, &batch.weights, with_grad)?;
                let plan = linear_cross_entropy(
                    &h,
                    plan_head.as_tensor(),
                    &batch.targets,
                    plan_weights,
                    with_grad,
                )?;
                let per_row = code
                    .per_row
                    .iter()
                    .zip(&plan.per_row)
                    .map(|(a, b)| a + b)
                    .collect();
                Ok(CrossEntropyOutput {
                    loss: (code.loss + plan.loss)?,
                    per_row,
                })
            }
            _ => Ok(linear_cross_entropy(
                &h,
                head,
                &batch.targets,
                &batch.weights,
                with_grad,
            )?),
        }
    }

    /// Next-token logits `(len, vocab)` of one sequence (for checks against the inference
    /// runtime; training never materialises them).
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        let n = ids.len();
        let batch = TokenBatch {
            batch: 1,
            seq_len: n,
            ids: ids.to_vec(),
            positions: Arc::new((0..n as u32).collect()),
            segments: Arc::new(vec![0; n]),
            targets: Arc::new(vec![0; n]),
            weights: Arc::new(vec![0.0; n]),
            plan_weights: None,
        };
        let h = self.hidden(&batch, None)?;
        Ok(h.matmul(&self.head().tensor().t()?)?)
    }
}

impl Layer {
    /// The seven linear layers, in PEFT's order.
    pub fn projections(&self) -> [&Proj; 7] {
        [
            &self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down,
        ]
    }
}
