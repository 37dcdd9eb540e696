//! Errors of the experiment layer.

use std::path::{Path, PathBuf};

/// What can go wrong while reading an experiment or planning its stages.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The experiment file (or a `--set` override) is wrong; the message names the key.
    #[error("{0}")]
    Experiment(String),
    /// A stage's record is damaged.
    #[error("{path}: damaged stage record: {message}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model named in the experiment could not be found.
    #[error(transparent)]
    Model(#[from] codeplan_model::store::StoreError),
    /// Hashing an input failed.
    #[error(transparent)]
    Train(#[from] codeplan_train::TrainError),
}

impl RunError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Result with [`RunError`].
pub type Result<T, E = RunError> = std::result::Result<T, E>;
