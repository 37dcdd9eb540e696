//! Architectures: each file maps one family's metadata onto [`DecoderConfig`].
//!
//! The decoder itself ([`crate::decoder`]) is shared by the Llama family; a new architecture of
//! that family is one new file here plus one line in each `match` below.

mod llama;
mod qwen2;

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::config::DecoderConfig;
use crate::error::{ModelError, Result};

/// Architecture names this runtime implements, as GGUF `general.architecture` and HF
/// `model_type` spell them.
pub const SUPPORTED: &[&str] = &["llama", "qwen2"];

/// Reads the decoder configuration from GGUF metadata.
pub fn config_from_gguf(content: &Content, file: &Path) -> Result<DecoderConfig> {
    let meta = GgufMeta { content, file };
    let arch = meta.string("general.architecture")?;
    match arch.as_str() {
        "llama" => llama::from_gguf(&meta),
        "qwen2" => qwen2::from_gguf(&meta),
        _ => Err(unsupported(file, &arch)),
    }
}

/// Reads the decoder configuration from a Hugging Face `config.json`.
pub fn config_from_hf(config: &serde_json::Value, file: &Path) -> Result<DecoderConfig> {
    let meta = HfConfig { config, file };
    let arch = meta.string("model_type")?;
    match arch.as_str() {
        "llama" => llama::from_hf(&meta),
        "qwen2" => qwen2::from_hf(&meta),
        _ => Err(unsupported(file, &arch)),
    }
}

fn unsupported(file: &Path, arch: &str) -> ModelError {
    ModelError::UnsupportedArchitecture {
        file: file.to_owned(),
        arch: arch.to_owned(),
        supported: SUPPORTED.join(", "),
    }
}

/// Typed access to GGUF metadata, with errors that name the file and key.
pub(crate) struct GgufMeta<'a> {
    pub content: &'a Content,
    pub file: &'a Path,
}

impl GgufMeta<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ModelError {
        ModelError::Metadata {
            file: self.file.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.error(key, "is missing"))
    }

    pub fn string(&self, key: &str) -> Result<String> {
        match self.get(key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.error(key, format!("should be a string, found {other:?}"))),
        }
    }

    /// Any unsigned or non-negative integer type: converters are not consistent about which.
    pub fn usize(&self, key: &str) -> Result<usize> {
        let value = self.get(key)?;
        let n: Option<u64> = match value {
            Value::U8(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            self.error(
                key,
                format!("should be a non-negative integer, found {value:?}"),
            )
        })
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.content.metadata.contains_key(key) {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.get(key)? {
            Value::F32(v) => Ok(f64::from(*v)),
            Value::F64(v) => Ok(*v),
            other => Err(self.error(key, format!("should be a float, found {other:?}"))),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        if self.content.metadata.contains_key(key) {
            self.f64(key)
        } else {
            Ok(default)
        }
    }

    /// Rows of a tensor (candle reverses GGUF's innermost-first order on reading).
    pub fn tensor_rows(&self, name: &str) -> Option<usize> {
        self.content
            .tensor_infos
            .get(name)
            .and_then(|info| info.shape.dims().first().copied())
    }
}

/// Typed access to a Hugging Face `config.json`, with errors that name the file and key.
pub(crate) struct HfConfig<'a> {
    pub config: &'a serde_json::Value,
    pub file: &'a Path,
}

impl HfConfig<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ModelError {
        ModelError::Metadata {
            file: self.file.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(key, format!("should be a string, found {other}"))),
            None => Err(self.error(key, "is missing")),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let value = self.get(key).ok_or_else(|| self.error(key, "is missing"))?;
        value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                self.error(
                    key,
                    format!("should be a non-negative integer, found {value}"),
                )
            })
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.get(key).is_some() {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.error(key, format!("should be a number, found {v}"))),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.error(key, format!("should be true or false, found {v}"))),
        }
    }
}

/// The keys every Llama-family GGUF shares under its `<arch>.` prefix.
pub(crate) fn gguf_llama_family(
    meta: &GgufMeta<'_>,
    rope_style: crate::config::RopeStyle,
    attention_bias: bool,
    default_rope_theta: f64,
) -> Result<DecoderConfig> {
    let arch = meta.string("general.architecture")?;
    let key = |k: &str| format!("{arch}.{k}");
    let hidden_size = meta.usize(&key("embedding_length"))?;
    let num_heads = meta.usize(&key("attention.head_count"))?;
    let num_kv_heads = meta.usize_or(&key("attention.head_count_kv"), num_heads)?;
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(meta.error(
            &key("attention.head_count_kv"),
            format!("{num_kv_heads} key/value heads do not divide {num_heads} query heads"),
        ));
    }
    let head_dim = meta.usize_or(&key("attention.key_length"), hidden_size / num_heads)?;
    let vocab_size = match meta.usize_or(&key("vocab_size"), 0)? {
        0 => meta.tensor_rows("token_embd.weight").map_or_else(
            || Err(meta.error(&key("vocab_size"), "is missing and so is token_embd.weight")),
            Ok,
        )?,
        n => n,
    };
    Ok(DecoderConfig {
        arch: arch.clone(),
        vocab_size,
        hidden_size,
        intermediate_size: meta.usize(&key("feed_forward_length"))?,
        num_layers: meta.usize(&key("block_count"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: meta.f64(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: meta.f64_or(&key("rope.freq_base"), default_rope_theta)? as f32,
        rope_style,
        context_length: meta.usize(&key("context_length"))?,
        attention_bias,
    })
}

/// The keys every Llama-family Hugging Face `config.json` shares.
pub(crate) fn hf_llama_family(
    meta: &HfConfig<'_>,
    attention_bias: bool,
    default_rope_theta: f64,
) -> Result<DecoderConfig> {
    let hidden_size = meta.usize("hidden_size")?;
    let num_heads = meta.usize("num_attention_heads")?;
    let num_kv_heads = meta.usize_or("num_key_value_heads", num_heads)?;
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(meta.error(
            "num_key_value_heads",
            format!("{num_kv_heads} key/value heads do not divide {num_heads} query heads"),
        ));
    }
    Ok(DecoderConfig {
        arch: meta.string("model_type")?,
        vocab_size: meta.usize("vocab_size")?,
        hidden_size,
        intermediate_size: meta.usize("intermediate_size")?,
        num_layers: meta.usize("num_hidden_layers")?,
        num_heads,
        num_kv_heads,
        head_dim: meta.usize_or("head_dim", hidden_size / num_heads)?,
        rms_norm_eps: meta.f64_or("rms_norm_eps", 1e-6)?,
        rope_theta: meta.f64_or("rope_theta", default_rope_theta)? as f32,
        // Hugging Face checkpoints keep q/k in their original (unpermuted) layout.
        rope_style: crate::config::RopeStyle::Halves,
        context_length: meta.usize_or("max_position_embeddings", 2048)?,
        attention_bias,
    })
}
