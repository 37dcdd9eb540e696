//! codeplan's trainer: the student model as trainable modules whose every op has a backward
//! pass, LoRA adapters, AdamW, training examples with loss masks, checkpoints and export.

pub mod ops;
