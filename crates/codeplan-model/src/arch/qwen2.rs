//! Qwen2 (and Qwen2.5-Coder): a Llama with biases on q/k/v and NeoX-style RoPE.

use super::{GgufMeta, HfConfig};
use crate::config::{DecoderConfig, RopeStyle};
use crate::error::Result;

/// GGUF `qwen2`: llama.cpp runs it with NeoX RoPE on unpermuted weights.
pub(super) fn from_gguf(meta: &GgufMeta<'_>) -> Result<DecoderConfig> {
    super::gguf_llama_family(meta, RopeStyle::Halves, true, 1_000_000.0)
}

/// Hugging Face `Qwen2ForCausalLM`.
pub(super) fn from_hf(meta: &HfConfig<'_>) -> Result<DecoderConfig> {
    super::hf_llama_family(meta, true, 1_000_000.0)
}
