//! Errors of the trainer.

use std::path::{Path, PathBuf};

/// What can go wrong while preparing or running training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad input from the user (configuration, data, plans), described fully.
    #[error("{0}")]
    Input(String),
    /// The model runtime failed (loading weights, tokenizer, template).
    #[error(transparent)]
    Model(#[from] codeplan_model::ModelError),
    /// Tokenising failed.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] codeplan_model::tokenizer::TokenizerError),
    /// The chat template could not be rendered.
    #[error("chat template: {0}")]
    ChatTemplate(#[from] codeplan_model::chat::ChatError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The data layer rejected something.
    #[error(transparent)]
    Data(#[from] codeplan_data::DataError),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
