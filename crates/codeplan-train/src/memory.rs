//! How much memory a run needs, estimated before any weight is loaded, so that a model that
//! does not fit is refused with a clear message instead of being killed mid-run.

use codeplan_model::DecoderConfig;

use crate::config::{ModeKind, TrainConfig};
use crate::error::{Result, TrainError};

/// Parameters of a decoder of this shape (the head counted when it is separate).
pub fn parameter_count(c: &DecoderConfig, tied_embeddings: bool) -> usize {
    let (d, q, kv, i) = (
        c.hidden_size,
        c.num_heads * c.head_dim,
        c.num_kv_heads * c.head_dim,
        c.intermediate_size,
    );
    let bias = if c.attention_bias { q + 2 * kv } else { 0 };
    let layer = 2 * d + d * q + 2 * d * kv + q * d + bias + 3 * d * i;
    let head = if tied_embeddings { 0 } else { c.vocab_size * d };
    c.vocab_size * d + c.num_layers * layer + d + head
}

/// Parameters the optimiser updates.
pub fn trained_count(c: &DecoderConfig, tied_embeddings: bool, config: &TrainConfig) -> usize {
    match config.mode {
        ModeKind::Full => parameter_count(c, tied_embeddings),
        ModeKind::Lora => {
            let (d, q, kv, i) = (
                c.hidden_size,
                c.num_heads * c.head_dim,
                c.num_kv_heads * c.head_dim,
                c.intermediate_size,
            );
            let r = config.lora_rank;
            let per_layer: usize = config
                .lora_targets
                .iter()
                .map(|t| {
                    use crate::lora::LoraTarget::*;
                    let (out, inp) = match t {
                        QProj => (q, d),
                        KProj | VProj => (kv, d),
                        OProj => (d, q),
                        GateProj | UpProj => (i, d),
                        DownProj => (d, i),
                    };
                    r * (out + inp)
                })
                .sum();
            c.num_layers * per_layer
        }
    }
}

/// Estimated peak bytes: f32 weights; for trained tensors a gradient and two AdamW moments;
/// the activations the backward pass keeps (about `9·hidden + 3·kv + 3·intermediate` values
/// per token and layer with the fused ops — within 6% of the peaks measured on SmolLM2 and Qwen2.5);
/// and one chunk of output-head logits.
pub fn estimate_bytes(c: &DecoderConfig, tied_embeddings: bool, config: &TrainConfig) -> u64 {
    let weights = parameter_count(c, tied_embeddings) as u64 * 4;
    let trained = trained_count(c, tied_embeddings, config) as u64 * 4 * 3;
    let per_token_layer =
        9 * c.hidden_size + 3 * c.num_kv_heads * c.head_dim + 3 * c.intermediate_size;
    let tokens = (config.max_len * config.batch_size) as u64;
    let activations = tokens * c.num_layers as u64 * per_token_layer as u64 * 4;
    let logits = 64 * c.vocab_size as u64 * 4 * 2;
    weights + trained + activations + logits
}

/// Refuses a run whose estimate exceeds the memory available now, saying what to change.
pub fn check_fits(c: &DecoderConfig, tied_embeddings: bool, config: &TrainConfig) -> Result<u64> {
    let need = estimate_bytes(c, tied_embeddings, config);
    if let Some(available) = crate::data::available_memory() {
        if need > available {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            return Err(TrainError::Input(format!(
                "this run needs about {:.1} GiB of memory ({} parameters{}, {} tokens per \
                 micro-batch) but {:.1} GiB are available; lower --max-len or --batch-size \
                 (use --grad-accum for the same effective batch){}",
                gib(need),
                parameter_count(c, tied_embeddings),
                match config.mode {
                    ModeKind::Full => ", all trained",
                    ModeKind::Lora => ", LoRA",
                },
                config.max_len * config.batch_size,
                gib(available),
                match config.mode {
                    ModeKind::Full => ", or train with LoRA (--mode lora)",
                    ModeKind::Lora => "",
                }
            )));
        }
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeplan_model::RopeStyle;

    fn qwen05() -> DecoderConfig {
        DecoderConfig {
            arch: "qwen2".into(),
            vocab_size: 151936,
            hidden_size: 896,
            intermediate_size: 4864,
            num_layers: 24,
            num_heads: 14,
            num_kv_heads: 2,
            head_dim: 64,
            rms_norm_eps: 1e-6,
            rope_theta: 1e6,
            rope_style: RopeStyle::Halves,
            context_length: 32768,
            attention_bias: true,
        }
    }

    #[test]
    fn counts_match_the_real_models() {
        // transformers reports 494,032,768 for Qwen2.5-0.5B (tied) and 630,167,424 untied,
        // and peft 8,798,208 trainable for r=16 on all linear layers.
        assert_eq!(parameter_count(&qwen05(), true), 494_032_768);
        assert_eq!(parameter_count(&qwen05(), false), 630_167_424);
        let config = TrainConfig {
            lora_rank: 16,
            ..TrainConfig::default()
        };
        assert_eq!(trained_count(&qwen05(), false, &config), 8_798_208);
    }

    #[test]
    fn a_model_too_big_for_the_machine_is_refused_with_advice() {
        let mut huge = qwen05();
        huge.num_layers = 24 * 400;
        let config = TrainConfig {
            mode: ModeKind::Full,
            ..TrainConfig::default()
        };
        if crate::data::available_memory().is_some() {
            let err = check_fits(&huge, false, &config).unwrap_err().to_string();
            assert!(err.contains("GiB") && err.contains("--mode lora"), "{err}");
        }
    }

    #[test]
    fn the_estimate_is_near_the_measured_peaks() {
        // Peak RSS measured by scripts/bench/training.py (BENCHMARKS.md), 2 rows × 512 tokens.
        // LoRA r=16 on qwen2.5-coder-0.5b (untied head): 4,844 MiB.
        let lora = TrainConfig {
            lora_rank: 16,
            max_len: 512,
            batch_size: 2,
            ..TrainConfig::default()
        };
        let mib = |c: &DecoderConfig, tied, t: &TrainConfig| {
            estimate_bytes(c, tied, t) as f64 / (1u64 << 20) as f64
        };
        let got = mib(&qwen05(), false, &lora);
        assert!((0.9 * 4844.0..1.1 * 4844.0).contains(&got), "{got:.0} MiB");
        // Full fine-tuning of smollm2-135m (tied head): 3,474 MiB.
        let smollm2 = DecoderConfig {
            arch: "llama".into(),
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            attention_bias: false,
            ..qwen05()
        };
        assert_eq!(parameter_count(&smollm2, true), 134_515_008);
        let full = TrainConfig {
            mode: ModeKind::Full,
            ..lora
        };
        let got = mib(&smollm2, true, &full);
        assert!((0.9 * 3474.0..1.1 * 3474.0).contains(&got), "{got:.0} MiB");
    }
}
