//! Shared helpers: where the real models live, and skipping loudly when one is absent.

#![allow(dead_code)]

use std::path::PathBuf;

/// The installed GGUF of a named model, or `None` with a printed reason; a model listed in
/// `CODEPLAN_REQUIRE_MODELS` (CI's) fails the test instead of skipping it.
pub fn model_or_skip(name: &str) -> Option<PathBuf> {
    let root = codeplan_model::store::models_root(None).ok()?;
    let path = root.join(name).join("model.gguf");
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("CODEPLAN_REQUIRE_MODELS")
        .is_ok_and(|v| v.split(',').any(|m| m.trim() == name));
    assert!(
        !required,
        "{name} is required (CODEPLAN_REQUIRE_MODELS) but not installed"
    );
    eprintln!(
        "SKIPPED: {name} is not installed ({} missing)",
        path.display()
    );
    None
}

/// Every element of a tensor.
pub fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// LoRA of rank `rank` (α = 2·rank, no dropout) on `targets`.
pub fn lora(
    rank: usize,
    targets: &[codeplan_train::lora::LoraTarget],
) -> codeplan_train::model::Mode {
    codeplan_train::model::Mode::Lora(codeplan_train::lora::LoraSpec {
        rank,
        alpha: 2.0 * rank as f32,
        dropout: 0.0,
        targets: targets.to_vec(),
    })
}

/// Gives every LoRA `B` random values in ±`scale` (it starts at zero: merging would be a no-op).
pub fn perturb_adapters(model: &codeplan_train::model::TrainableModel, scale: f32) {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for (name, var) in model.trainable() {
        if name.ends_with("lora_B.weight") {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale)
                .collect();
            var.set(&candle_core::Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                .unwrap();
        }
    }
}
