//! Llama (and SmolLM, which is a Llama): no attention bias, RoPE base 10,000 by default.

use super::{GgufMeta, HfConfig};
use crate::config::{DecoderConfig, RopeStyle};
use crate::error::Result;

/// GGUF `llama`: llama.cpp's converter permutes q/k rows, so RoPE pairs adjacent dimensions.
pub(super) fn from_gguf(meta: &GgufMeta<'_>) -> Result<DecoderConfig> {
    super::gguf_llama_family(meta, RopeStyle::Interleaved, false, 10_000.0)
}

/// Hugging Face `LlamaForCausalLM`.
pub(super) fn from_hf(meta: &HfConfig<'_>) -> Result<DecoderConfig> {
    let bias = meta.bool_or("attention_bias", false)?;
    super::hf_llama_family(meta, bias, 10_000.0)
}
