//! Shared helpers: where the real models live, and skipping loudly when one is absent.

#![allow(dead_code)]

use std::path::PathBuf;

use codeplan_model::{Decoder, Segment};

/// The installed GGUF of a named model, or `None` with a printed reason (CI fetches
/// `smollm2-135m` in `scripts/setup.sh`; the bigger ones are for benchmarks and the demo).
pub fn model_path(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("CODEPLAN_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/codeplan/models"))
        })?;
    let path = root.join(name).join("model.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is not installed ({} missing); run `codeplan models fetch {name}`",
            name,
            path.display()
        );
        None
    }
}

/// Whether a model must be present: `CODEPLAN_REQUIRE_MODELS` lists them, comma-separated
/// (CI lists the one it fetches, so that a missing model fails instead of skipping).
pub fn required(name: &str) -> bool {
    std::env::var("CODEPLAN_REQUIRE_MODELS").is_ok_and(|v| v.split(',').any(|m| m.trim() == name))
}

/// `model_path`, failing instead of skipping when models are required.
pub fn model_or_skip(name: &str) -> Option<PathBuf> {
    let p = model_path(name);
    if p.is_none() && required(name) {
        panic!("{name} is required (CODEPLAN_REQUIRE_MODELS) but not installed");
    }
    p
}

/// The next-token logits after `tokens`, computed from an empty cache in one pass.
pub fn next_logits(decoder: &Decoder, tokens: &[u32]) -> Vec<f32> {
    let mut cache = decoder.new_cache();
    decoder
        .forward(&mut [Segment {
            cache: &mut cache,
            tokens,
        }])
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}
