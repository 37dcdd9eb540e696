//! The runtime's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A metadata key the architecture needs is absent or has the wrong type.
    #[error("{file}: metadata key `{key}` {problem}")]
    Metadata {
        /// The model file or config.
        file: PathBuf,
        /// The key, e.g. `qwen2.block_count`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A weight tensor is absent or has an unexpected shape.
    #[error("{file}: tensor `{name}` {problem}")]
    Tensor {
        /// The model file or folder.
        file: PathBuf,
        /// The tensor name in that file.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The file names an architecture this runtime does not implement.
    #[error("{file}: architecture `{arch}` is not supported (supported: {supported})")]
    UnsupportedArchitecture {
        /// The model file or config.
        file: PathBuf,
        /// The architecture it names.
        arch: String,
        /// The ones we have.
        supported: String,
    },
    /// The prompt and the requested tokens do not fit the context window.
    #[error("context overflow: {needed} tokens needed, the model's context is {context}")]
    ContextOverflow {
        /// Positions the request would use.
        needed: usize,
        /// The model's maximum.
        context: usize,
    },
    /// A generation request is malformed (empty prompt, n = 0, bad sampling values…).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(#[from] crate::chat::ChatError),
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The device asked for cannot be used (unknown name, no CUDA in this build, no such GPU).
    #[error("device: {0}")]
    Device(String),
    /// candle reported an error while computing.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
