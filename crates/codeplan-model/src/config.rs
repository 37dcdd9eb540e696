//! The plain configuration of a Llama-family decoder, whatever file it came from.

/// How rotary embeddings pair the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's "normal" RoPE, used for GGUF `llama`, whose
    /// converter permuted the q/k rows to match.
    Interleaved,
    /// First half against second half (GPT-NeoX): Hugging Face weights, and GGUF `qwen2`.
    Halves,
}

/// The shape and constants of a decoder-only transformer of the Llama/Qwen2 family.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    /// Architecture name as the file spells it (`llama`, `qwen2`).
    pub arch: String,
    /// Rows of the embedding matrix.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's inner layer.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Query heads per block.
    pub num_heads: usize,
    /// Key/value heads per block (grouped-query attention when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Longest sequence the model was trained for.
    pub context_length: usize,
    /// Whether q/k/v projections carry a bias (Qwen2).
    pub attention_bias: bool,
}

impl DecoderConfig {
    /// Query heads that share one key/value head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
}
