//! The starting weights of a student: every tensor dense in f32 under its Hugging Face name,
//! read from a GGUF file (dequantised) or a Hugging Face folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use codeplan_model::weights::{Role, WeightSource};
use codeplan_model::{DecoderConfig, Precision, RopeStyle};

use crate::error::{Result, TrainError};

/// Dense f32 weights under Hugging Face names (`model.layers.0.self_attn.q_proj.weight`, …),
/// in Hugging Face layout (q/k rows in the order the "halves" RoPE expects).
pub struct BaseWeights {
    /// The decoder's shape; `rope_style` is always [`RopeStyle::Halves`] here.
    pub config: DecoderConfig,
    /// Every tensor by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Whether the output head is the embedding matrix (no `lm_head.weight`).
    pub tied_embeddings: bool,
    /// Where the weights came from.
    pub source: PathBuf,
}

/// Every role of a decoder with `layers` blocks, in file order.
pub fn roles(layers: usize) -> Vec<Role> {
    let mut roles = vec![Role::Embedding];
    for i in 0..layers {
        roles.extend([
            Role::AttnNorm(i),
            Role::Q(i),
            Role::K(i),
            Role::V(i),
            Role::O(i),
            Role::FfnNorm(i),
            Role::Gate(i),
            Role::Up(i),
            Role::Down(i),
        ]);
    }
    roles.extend([Role::FinalNorm, Role::LmHead]);
    roles
}

/// Undoes llama.cpp's q/k row permutation (its converter interleaves each head's two halves
/// for the "normal" RoPE), giving the Hugging Face row order back.
pub fn unpermute_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let rest: usize = dims[1..].iter().product();
    let hd = rows / heads;
    Ok(w.reshape((heads, hd / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Applies llama.cpp's q/k row permutation (the inverse of [`unpermute_rows`]), for export.
pub fn permute_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let rest: usize = dims[1..].iter().product();
    let hd = rows / heads;
    Ok(w.reshape((heads, 2, hd / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Opens a GGUF file or Hugging Face folder and reads its decoder configuration.
fn open(path: &Path) -> Result<(WeightSource, DecoderConfig)> {
    if path.is_dir() {
        let config_path = path.join("config.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            TrainError::Input(format!("{}: not valid JSON: {e}", config_path.display()))
        })?;
        let config = codeplan_model::arch::config_from_hf(&json, &config_path)?;
        Ok((WeightSource::open_safetensors(path)?, config))
    } else {
        let source = WeightSource::open_gguf(path, Precision::F32)?;
        let content = source.gguf_content().expect("a GGUF source");
        let config = codeplan_model::arch::config_from_gguf(content, path)?;
        Ok((source, config))
    }
}

impl BaseWeights {
    /// Reads a GGUF file or a Hugging Face folder.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_checked(path, |_, _| Ok(()))
    }

    /// [`BaseWeights::load`], first calling `check` with the decoder's shape and whether its
    /// head is tied, as read from the header: a run refused there reads no weight.
    pub fn load_checked(
        path: &Path,
        check: impl FnOnce(&DecoderConfig, bool) -> Result<()>,
    ) -> Result<Self> {
        let (mut source, mut config) = open(path)?;
        check(&config, !source.has(Role::LmHead))?;
        let permuted = config.rope_style == RopeStyle::Interleaved;
        let mut tensors = BTreeMap::new();
        for role in roles(config.num_layers) {
            for suffix in ["weight", "bias"] {
                let Some(mut t) = source.dense(role, suffix)? else {
                    continue;
                };
                if permuted {
                    match role {
                        Role::Q(_) => t = unpermute_rows(&t, config.num_heads)?,
                        Role::K(_) => t = unpermute_rows(&t, config.num_kv_heads)?,
                        _ => {}
                    }
                }
                tensors.insert(format!("{}.{suffix}", role.hf_name()), t);
            }
        }
        config.rope_style = RopeStyle::Halves;
        let tied_embeddings = !tensors.contains_key("lm_head.weight");
        Ok(BaseWeights {
            config,
            tensors,
            tied_embeddings,
            source: path.to_owned(),
        })
    }

    /// Random weights of the given shape (norms at 1, the rest uniform in ±`scale`), for tests
    /// and benchmarks that need a model of a size no file has.
    pub fn random(config: DecoderConfig, tied_embeddings: bool, seed: u64) -> Result<Self> {
        use rand_chacha::rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let c = &config;
        let (d, q_out, kv_out) = (
            c.hidden_size,
            c.num_heads * c.head_dim,
            c.num_kv_heads * c.head_dim,
        );
        let mut tensors = BTreeMap::new();
        for role in roles(c.num_layers) {
            let (rows, cols, norm) = match role {
                Role::Embedding | Role::LmHead => (c.vocab_size, d, false),
                Role::AttnNorm(_) | Role::FfnNorm(_) | Role::FinalNorm => (d, 1, true),
                Role::Q(_) => (q_out, d, false),
                Role::K(_) | Role::V(_) => (kv_out, d, false),
                Role::O(_) => (d, q_out, false),
                Role::Gate(_) | Role::Up(_) => (c.intermediate_size, d, false),
                Role::Down(_) => (d, c.intermediate_size, false),
            };
            if role == Role::LmHead && tied_embeddings {
                continue;
            }
            let dev = candle_core::Device::Cpu;
            let scale = 1.0 / (cols as f32).sqrt();
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale)
                    .collect()
            };
            let weight = if norm {
                Tensor::from_vec(
                    draw(rows).iter().map(|v| 1.0 + v).collect::<Vec<_>>(),
                    rows,
                    &dev,
                )?
            } else {
                Tensor::from_vec(draw(rows * cols), (rows, cols), &dev)?
            };
            tensors.insert(format!("{}.weight", role.hf_name()), weight);
            if c.attention_bias && matches!(role, Role::Q(_) | Role::K(_) | Role::V(_)) {
                tensors.insert(
                    format!("{}.bias", role.hf_name()),
                    Tensor::from_vec(draw(rows), rows, &dev)?,
                );
            }
        }
        Ok(BaseWeights {
            config,
            tensors,
            tied_embeddings,
            source: PathBuf::from("(random)"),
        })
    }

    /// The tensor called `name`, or an error naming it and the source.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            TrainError::Input(format!("{}: has no tensor `{name}`", self.source.display()))
        })
    }

    /// Number of parameters (the tied head counted once).
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count()).sum()
    }
}
