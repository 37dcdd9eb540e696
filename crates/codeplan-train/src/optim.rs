//! AdamW updating parameters in place on all cores, gradient clipping by global norm, and
//! learning-rate schedules.

use std::sync::Mutex;

use candle_core::{CpuStorage, Layout, Result as CandleResult, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::ops::with_slice;

/// Elements per rayon task in the optimiser.
const CHUNK: usize = 1 << 14;

/// AdamW's settings (a config file may give any of them; the rest keep their defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// One trained tensor and its moment estimates.
pub struct Slot {
    /// Its name (Hugging Face or adapter name).
    pub name: String,
    /// The tensor.
    pub var: Var,
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
    /// Whether weight decay applies.
    pub decay: bool,
}

/// AdamW over a set of trained tensors.
pub struct AdamW {
    /// Settings.
    pub config: AdamWConfig,
    /// The tensors and their state.
    pub slots: Vec<Slot>,
    /// Updates applied so far.
    pub step: u64,
}

/// Whether decoupled weight decay applies to a tensor (as Hugging Face's Trainer: not to
/// biases and norm weights).
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("norm"))
}

struct Update<'a> {
    m: Mutex<&'a mut [f32]>,
    v: Mutex<&'a mut [f32]>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    grad_scale: f32,
    bias1: f32,
    bias2: f32,
}

impl candle_core::InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(
        &self,
        ps: &mut CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> CandleResult<()> {
        let g = crate::ops::slice(gs, gl, "adamw")?;
        let p = match ps {
            CpuStorage::F32(p) => p,
            _ => candle_core::bail!("adamw: parameters must be f32"),
        };
        let Some((start, end)) = pl.contiguous_offsets() else {
            candle_core::bail!("adamw: parameters must be contiguous");
        };
        let p = &mut p[start..end];
        let mut m = self.m.lock().expect("not poisoned");
        let mut v = self.v.lock().expect("not poisoned");
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let g = g[i] * self.grad_scale;
                    m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * g;
                    v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * g * g;
                    let update = (m[i] / self.bias1) / ((v[i] / self.bias2).sqrt() + self.eps);
                    p[i] -= self.lr * (update + self.decay * p[i]);
                }
            });
        Ok(())
    }
}

impl AdamW {
    /// AdamW over `params` (name, tensor), moments at zero.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Self {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let n = var.elem_count();
                Slot {
                    decay: decays(&name),
                    name,
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        AdamW {
            config,
            slots,
            step: 0,
        }
    }

    /// Trained elements in total.
    pub fn parameter_count(&self) -> usize {
        self.slots.iter().map(|s| s.m.len()).sum()
    }

    /// The L2 norm of all gradients together.
    pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
        let mut total = 0f64;
        for g in grads {
            total += with_slice(g, "grad-norm", |g| {
                g.par_chunks(CHUNK)
                    .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .sum::<f64>()
            })?;
        }
        Ok(total.sqrt())
    }

    /// Applies one update with learning rate `lr`; `grads[i]` belongs to `slots[i]` and is
    /// multiplied by `grad_scale` first (gradient clipping).
    pub fn update(&mut self, grads: &[Tensor], lr: f64, grad_scale: f64) -> Result<()> {
        if grads.len() != self.slots.len() {
            return Err(TrainError::Input(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.slots.len()
            )));
        }
        self.step += 1;
        let c = &self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let grad = grad.contiguous()?;
            if grad.dims() != slot.var.dims() {
                return Err(TrainError::Input(format!(
                    "gradient of {} has shape {:?}, expected {:?}",
                    slot.name,
                    grad.dims(),
                    slot.var.dims()
                )));
            }
            let op = Update {
                m: Mutex::new(&mut slot.m),
                v: Mutex::new(&mut slot.v),
                lr: lr as f32,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                eps: c.eps as f32,
                decay: if slot.decay {
                    c.weight_decay as f32
                } else {
                    0.0
                },
                grad_scale: grad_scale as f32,
                bias1: bias1 as f32,
                bias2: bias2 as f32,
            };
            slot.var.as_tensor().inplace_op2(&grad, &op)?;
        }
        Ok(())
    }
}

/// How the learning rate moves over training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The peak rate throughout (after warm-up).
    #[default]
    Constant,
    /// Linear decay to zero at the last step (after warm-up).
    Linear,
    /// Half a cosine down to zero at the last step (after warm-up).
    Cosine,
}

/// The learning rate of update `step` (0-based) of `total`, with linear warm-up over
/// `warmup` steps.
pub fn learning_rate(schedule: LrSchedule, peak: f64, step: u64, total: u64, warmup: u64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    match schedule {
        LrSchedule::Constant => peak,
        LrSchedule::Linear => peak * (1.0 - progress),
        LrSchedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adamw_first_steps_follow_the_formula() {
        let var =
            Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let config = AdamWConfig {
            weight_decay: 0.1,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], config.clone());
        let grads = [[0.3f64, -0.1, 2.0], [0.1, 0.2, -1.0]];
        let lr = 0.01;
        // Reference in f64: m, v, bias corrections, decoupled decay.
        let mut p = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0f64; 3], [0f64; 3]);
        for (t, g) in grads.iter().enumerate() {
            let g_t = Tensor::new(&[g[0] as f32, g[1] as f32, g[2] as f32], &Device::Cpu).unwrap();
            opt.update(&[g_t], lr, 1.0).unwrap();
            let step = t as i32 + 1;
            for i in 0..3 {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(step));
                let vh = v[i] / (1.0 - 0.999f64.powi(step));
                p[i] -= lr * (mh / (vh.sqrt() + 1e-8) + 0.1 * p[i]);
            }
        }
        let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        for (g, want) in got.iter().zip(p) {
            assert!((*g as f64 - want).abs() < 1e-6, "{got:?} vs {p:?}");
        }
        assert_eq!(opt.step, 2);
    }

    #[test]
    fn norms_and_biases_are_not_decayed() {
        assert!(decays("model.layers.0.mlp.up_proj.weight"));
        assert!(decays("model.layers.0.self_attn.q_proj.lora_A.weight"));
        assert!(!decays("model.layers.0.self_attn.q_proj.bias"));
        assert!(!decays("model.layers.3.input_layernorm.weight"));
        assert!(!decays("model.norm.weight"));
    }

    #[test]
    fn schedules_warm_up_then_decay() {
        let lr = |s, step| learning_rate(s, 1.0, step, 110, 10);
        assert!((lr(LrSchedule::Constant, 0) - 0.1).abs() < 1e-12);
        assert!((lr(LrSchedule::Constant, 9) - 1.0).abs() < 1e-12);
        assert!((lr(LrSchedule::Constant, 100) - 1.0).abs() < 1e-12);
        assert!((lr(LrSchedule::Linear, 60) - 0.5).abs() < 1e-12);
        assert!((lr(LrSchedule::Cosine, 60) - 0.5).abs() < 1e-12);
        assert!(lr(LrSchedule::Cosine, 109) < 0.001);
        assert!(lr(LrSchedule::Linear, 10) > lr(LrSchedule::Linear, 11));
    }
}
