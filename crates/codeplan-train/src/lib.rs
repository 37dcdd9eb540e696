//! codeplan's trainer: the student model as trainable modules whose every op has a backward
//! pass, LoRA adapters, AdamW, training examples with loss masks, checkpoints and export.
//!
//! - [`base::BaseWeights`] reads the starting weights (GGUF or Hugging Face folder);
//! - [`model::TrainableModel`] is the decoder built from [`ops`], full or LoRA ([`lora`]);
//! - [`examples`], [`batches`] and [`data`] turn problems and plans into masked token rows;
//! - [`optim`] (AdamW, schedules), [`trainer`] (the loop), [`checkpoint`], [`metrics`];
//! - [`export`] writes PEFT adapters, Hugging Face folders and GGUF files; [`infer`] runs the
//!   weights in training through codeplan-model's runtime; [`memory`] refuses runs that
//!   cannot fit.

pub mod base;
pub mod batches;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod examples;
pub mod export;
pub mod infer;
pub mod lora;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod optim;
pub mod trainer;

pub use error::{Result, TrainError};
