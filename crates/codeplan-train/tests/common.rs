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
