//! Reading weights from a GGUF file or a Hugging Face safetensors folder.
//!
//! The decoder asks for tensors by role ([`Role`]); each format knows its own names.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::device::Placement;
use crate::error::{ModelError, Result};
use crate::kernels::QuantMatrix;

/// `CODEPLAN_CANDLE_KERNELS=1` runs every quantised matmul with candle's kernels (to compare).
fn candle_kernels_only() -> bool {
    std::env::var_os("CODEPLAN_CANDLE_KERNELS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// What a weight is for, independent of how a file names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Token embedding matrix.
    Embedding,
    /// Final RMSNorm before the head.
    FinalNorm,
    /// Output projection to the vocabulary.
    LmHead,
    /// RMSNorm before attention in block `i`.
    AttnNorm(usize),
    /// Query projection of block `i`.
    Q(usize),
    /// Key projection of block `i`.
    K(usize),
    /// Value projection of block `i`.
    V(usize),
    /// Attention output projection of block `i`.
    O(usize),
    /// RMSNorm before the MLP in block `i`.
    FfnNorm(usize),
    /// MLP gate projection of block `i`.
    Gate(usize),
    /// MLP up projection of block `i`.
    Up(usize),
    /// MLP down projection of block `i`.
    Down(usize),
}

impl Role {
    /// llama.cpp's tensor name (without `.weight`/`.bias`).
    pub fn gguf_name(self) -> String {
        match self {
            Role::Embedding => "token_embd".into(),
            Role::FinalNorm => "output_norm".into(),
            Role::LmHead => "output".into(),
            Role::AttnNorm(i) => format!("blk.{i}.attn_norm"),
            Role::Q(i) => format!("blk.{i}.attn_q"),
            Role::K(i) => format!("blk.{i}.attn_k"),
            Role::V(i) => format!("blk.{i}.attn_v"),
            Role::O(i) => format!("blk.{i}.attn_output"),
            Role::FfnNorm(i) => format!("blk.{i}.ffn_norm"),
            Role::Gate(i) => format!("blk.{i}.ffn_gate"),
            Role::Up(i) => format!("blk.{i}.ffn_up"),
            Role::Down(i) => format!("blk.{i}.ffn_down"),
        }
    }

    /// The Hugging Face (transformers) parameter name (without `.weight`/`.bias`).
    pub fn hf_name(self) -> String {
        match self {
            Role::Embedding => "model.embed_tokens".into(),
            Role::FinalNorm => "model.norm".into(),
            Role::LmHead => "lm_head".into(),
            Role::AttnNorm(i) => format!("model.layers.{i}.input_layernorm"),
            Role::Q(i) => format!("model.layers.{i}.self_attn.q_proj"),
            Role::K(i) => format!("model.layers.{i}.self_attn.k_proj"),
            Role::V(i) => format!("model.layers.{i}.self_attn.v_proj"),
            Role::O(i) => format!("model.layers.{i}.self_attn.o_proj"),
            Role::FfnNorm(i) => format!("model.layers.{i}.post_attention_layernorm"),
            Role::Gate(i) => format!("model.layers.{i}.mlp.gate_proj"),
            Role::Up(i) => format!("model.layers.{i}.mlp.up_proj"),
            Role::Down(i) => format!("model.layers.{i}.mlp.down_proj"),
        }
    }
}

/// How to hold quantised weights in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Keep GGUF weights in their quantised types (the fast path).
    #[default]
    Native,
    /// Dequantise everything to f32 (the reference path for correctness checks, and training).
    F32,
}

/// How a layer's weight is multiplied.
#[derive(Clone, Debug)]
enum Kernel {
    /// candle's quantised or dense matmul.
    Candle(QMatMul),
    /// codeplan's kernels for the types candle runs with scalar code on x86.
    Quant(QuantMatrix),
}

/// A linear layer `y = x Wᵀ + b` over quantised or dense weights.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Kernel,
    bias: Option<Tensor>,
    /// The bias as plain values, for the fused decode step (which works on slices).
    bias_values: Option<Vec<f32>>,
    out_features: usize,
}

impl Linear {
    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The quantised weight, when this layer runs quantised.
    pub fn qtensor(&self) -> Option<&std::sync::Arc<QTensor>> {
        match &self.weight {
            Kernel::Candle(QMatMul::QTensor(t)) => Some(t),
            _ => None,
        }
    }

    /// codeplan's quantised kernel, when this layer runs on it.
    pub fn quant(&self) -> Option<&QuantMatrix> {
        match &self.weight {
            Kernel::Quant(q) => Some(q),
            Kernel::Candle(_) => None,
        }
    }

    /// The bias, when the layer has one.
    pub fn bias_values(&self) -> Option<&[f32]> {
        self.bias_values.as_deref()
    }

    /// Adds the bias (if any) to an already multiplied output.
    pub fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Applies the layer to rows `(n, in_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Kernel::Candle(w) => w.forward(x)?,
            Kernel::Quant(w) => w.forward(x)?,
        };
        self.add_bias(y)
    }
}

/// The embedding matrix, kept quantised when the file is.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: QMatMul,
}

impl Embedding {
    /// Looks up rows for `ids` (u32, any shape) → `(…, hidden)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.weight.embedding(ids)?)
    }
}

/// A source of weights: a GGUF file or a Hugging Face folder of safetensors.
pub enum WeightSource {
    /// A GGUF file, read tensor by tensor.
    Gguf {
        /// The file, for error messages.
        path: PathBuf,
        /// Its parsed header.
        content: gguf_file::Content,
        /// Open reader positioned anywhere.
        reader: BufReader<File>,
        /// Quantised or dequantised.
        precision: Precision,
    },
    /// Dense tensors already in memory under Hugging Face names (weights being trained).
    Tensors {
        /// What to call the source in error messages.
        label: PathBuf,
        /// The tensors by name.
        tensors: std::collections::BTreeMap<String, Tensor>,
    },
    /// Memory-mapped safetensors shards of a Hugging Face folder.
    Safetensors {
        /// The folder, for error messages.
        dir: PathBuf,
        /// The shards.
        tensors: candle_core::safetensors::MmapedSafetensors,
    },
}

impl WeightSource {
    /// Opens a GGUF file and reads its header.
    pub fn open_gguf(path: &Path, precision: Precision) -> Result<Self> {
        let file = File::open(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| ModelError::Tensor {
            file: path.to_owned(),
            name: "(header)".into(),
            problem: format!("is not a readable GGUF file: {e}"),
        })?;
        Ok(WeightSource::Gguf {
            path: path.to_owned(),
            content,
            reader,
            precision,
        })
    }

    /// Memory-maps the safetensors of a Hugging Face folder (one file, or shards listed by
    /// `model.safetensors.index.json`).
    pub fn open_safetensors(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io {
                path: index.clone(),
                source,
            })?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Metadata {
                    file: index.clone(),
                    key: "(file)".into(),
                    problem: format!("is not valid JSON: {e}"),
                })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::Metadata {
                    file: index.clone(),
                    key: "weight_map".into(),
                    problem: "is missing or not an object".into(),
                })?;
            let mut shards: Vec<PathBuf> = map
                .values()
                .filter_map(|v| v.as_str())
                .map(|s| dir.join(s))
                .collect();
            shards.sort();
            shards.dedup();
            shards
        } else {
            vec![dir.join("model.safetensors")]
        };
        for f in &files {
            if !f.exists() {
                return Err(ModelError::Io {
                    path: f.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "weight file missing",
                    ),
                });
            }
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap user we rely on nobody
        // truncating them while the model is loaded.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }
            .map_err(|e| ModelError::Tensor {
                file: dir.to_owned(),
                name: "(safetensors)".into(),
                problem: format!("could not be read: {e}"),
            })?;
        Ok(WeightSource::Safetensors {
            dir: dir.to_owned(),
            tensors,
        })
    }

    /// The GGUF header, when this source is a GGUF file.
    pub fn gguf_content(&self) -> Option<&gguf_file::Content> {
        match self {
            WeightSource::Gguf { content, .. } => Some(content),
            WeightSource::Safetensors { .. } | WeightSource::Tensors { .. } => None,
        }
    }

    /// Gives back the GGUF header once the weights are loaded.
    pub fn into_gguf_content(self) -> Option<gguf_file::Content> {
        match self {
            WeightSource::Gguf { content, .. } => Some(content),
            WeightSource::Safetensors { .. } | WeightSource::Tensors { .. } => None,
        }
    }

    fn file(&self) -> &Path {
        match self {
            WeightSource::Gguf { path, .. } => path,
            WeightSource::Safetensors { dir, .. } => dir,
            WeightSource::Tensors { label, .. } => label,
        }
    }

    fn name(&self, role: Role, suffix: &str) -> String {
        match self {
            WeightSource::Gguf { .. } => format!("{}.{suffix}", role.gguf_name()),
            WeightSource::Safetensors { .. } | WeightSource::Tensors { .. } => {
                format!("{}.{suffix}", role.hf_name())
            }
        }
    }

    /// Whether the source has the weight of `role`.
    pub fn has(&self, role: Role) -> bool {
        let name = self.name(role, "weight");
        match self {
            WeightSource::Gguf { content, .. } => content.tensor_infos.contains_key(&name),
            WeightSource::Safetensors { tensors, .. } => tensors.get(&name).is_ok(),
            WeightSource::Tensors { tensors, .. } => tensors.contains_key(&name),
        }
    }

    fn missing(&self, name: &str, problem: impl std::fmt::Display) -> ModelError {
        ModelError::Tensor {
            file: self.file().to_owned(),
            name: name.to_owned(),
            problem: problem.to_string(),
        }
    }

    /// A weight as a matmul operand on `device`: quantised (GGUF, native precision) or dense
    /// f32.
    fn matmul_weight(
        &mut self,
        name: &str,
        shape: (usize, usize),
        device: &Device,
    ) -> Result<QMatMul> {
        let weight = match self {
            WeightSource::Gguf {
                content,
                reader,
                precision,
                ..
            } => {
                let q = content
                    .tensor(reader, name, device)
                    .map_err(|e| ModelError::Tensor {
                        file: PathBuf::new(),
                        name: name.to_owned(),
                        problem: e.to_string(),
                    })?;
                match precision {
                    Precision::Native => QMatMul::from_qtensor(q)?,
                    Precision::F32 => QMatMul::Tensor(q.dequantize(device)?),
                }
            }
            WeightSource::Safetensors { tensors, .. } => {
                let t = tensors.load(name, device).map_err(|e| ModelError::Tensor {
                    file: PathBuf::new(),
                    name: name.to_owned(),
                    problem: e.to_string(),
                })?;
                QMatMul::Tensor(t.to_dtype(DType::F32)?)
            }
            WeightSource::Tensors { tensors, .. } => {
                let t = tensors.get(name).ok_or_else(|| ModelError::Tensor {
                    file: PathBuf::new(),
                    name: name.to_owned(),
                    problem: "is missing".into(),
                })?;
                QMatMul::Tensor(t.to_dtype(DType::F32)?.to_device(device)?)
            }
        };
        let got = match &weight {
            QMatMul::QTensor(q) => q.shape().dims().to_vec(),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims().to_vec(),
        };
        if got != [shape.0, shape.1] {
            return Err(self.missing(
                name,
                format!("has shape {got:?}, expected [{}, {}]", shape.0, shape.1),
            ));
        }
        Ok(weight)
    }

    /// A dense f32 vector (norm weights, biases) on `device`.
    fn vector(&mut self, name: &str, len: usize, device: &Device) -> Result<Tensor> {
        let t = match self {
            WeightSource::Gguf {
                content, reader, ..
            } => content
                .tensor(reader, name, device)
                .and_then(|q| q.dequantize(device)),
            WeightSource::Safetensors { tensors, .. } => tensors
                .load(name, device)
                .and_then(|t| t.to_dtype(DType::F32)),
            WeightSource::Tensors { tensors, .. } => match tensors.get(name) {
                Some(t) => t.to_dtype(DType::F32).and_then(|t| t.to_device(device)),
                None => Err(candle_core::Error::Msg("is missing".into())),
            },
        }
        .map_err(|e| self.missing(name, e))?;
        if t.dims() != [len] {
            return Err(self.missing(name, format!("has shape {:?}, expected [{len}]", t.dims())));
        }
        Ok(t)
    }

    /// The linear layer of `role` where `placement` says: weight `(out, in)`, and its bias
    /// when `bias` is set. On the CPU placement, codeplan's kernels take the types they run
    /// faster than candle's.
    pub fn linear(
        &mut self,
        role: Role,
        out: usize,
        inp: usize,
        bias: bool,
        placement: &Placement,
    ) -> Result<Linear> {
        let name = self.name(role, "weight");
        let device = placement.device();
        let weight = self
            .matmul_weight(&name, (out, inp), &device)
            .map_err(|e| self.fill_file(e))?;
        let own_kernels = placement.native_kernels() && !candle_kernels_only();
        let weight = match weight {
            QMatMul::QTensor(q) if own_kernels => match QuantMatrix::from_qtensor(&q)? {
                Some(fast) => Kernel::Quant(fast),
                None => Kernel::Candle(QMatMul::QTensor(q)),
            },
            other => Kernel::Candle(other),
        };
        let bias = if bias {
            Some(self.vector(&self.name(role, "bias"), out, &device)?)
        } else {
            None
        };
        let bias_values = bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(Linear {
            weight,
            bias,
            bias_values,
            out_features: out,
        })
    }

    /// The weight (`suffix` `weight` or `bias`) of `role` densely in f32, as the file stores
    /// it (GGUF `llama` q/k rows stay in llama.cpp's permuted order); `None` when the file has
    /// no such tensor. Training starts from these.
    pub fn dense(&mut self, role: Role, suffix: &str) -> Result<Option<Tensor>> {
        let name = self.name(role, suffix);
        let t = match self {
            WeightSource::Gguf {
                content, reader, ..
            } => {
                if !content.tensor_infos.contains_key(&name) {
                    return Ok(None);
                }
                content
                    .tensor(reader, &name, &Device::Cpu)
                    .and_then(|q| q.dequantize(&Device::Cpu))
            }
            WeightSource::Safetensors { tensors, .. } => {
                if tensors.get(&name).is_err() {
                    return Ok(None);
                }
                tensors
                    .load(&name, &Device::Cpu)
                    .and_then(|t| t.to_dtype(DType::F32))
            }
            WeightSource::Tensors { tensors, .. } => match tensors.get(&name) {
                Some(t) => t.to_dtype(DType::F32),
                None => return Ok(None),
            },
        }
        .map_err(|e| self.missing(&name, e))?;
        Ok(Some(t))
    }

    /// The norm weight of `role`, on `device`.
    pub fn norm(&mut self, role: Role, len: usize, device: &Device) -> Result<Tensor> {
        self.vector(&self.name(role, "weight"), len, device)
    }

    /// The embedding matrix `(vocab, hidden)`, on `device`.
    pub fn embedding(&mut self, vocab: usize, hidden: usize, device: &Device) -> Result<Embedding> {
        let name = self.name(Role::Embedding, "weight");
        let weight = self
            .matmul_weight(&name, (vocab, hidden), device)
            .map_err(|e| self.fill_file(e))?;
        Ok(Embedding { weight })
    }

    /// The output head where `placement` says; the embedding matrix when the file ties them
    /// (no separate head).
    pub fn lm_head(
        &mut self,
        vocab: usize,
        hidden: usize,
        placement: &Placement,
    ) -> Result<Linear> {
        let role = if self.has(Role::LmHead) {
            Role::LmHead
        } else {
            Role::Embedding
        };
        self.linear(role, vocab, hidden, false, placement)
    }

    fn fill_file(&self, e: ModelError) -> ModelError {
        match e {
            ModelError::Tensor {
                file,
                name,
                problem,
            } if file.as_os_str().is_empty() => ModelError::Tensor {
                file: self.file().to_owned(),
                name,
                problem,
            },
            other => other,
        }
    }
}
