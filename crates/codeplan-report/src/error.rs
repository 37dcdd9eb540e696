//! Errors of the report: every one names the file (and line) or the setting at fault.

use std::path::PathBuf;

/// Why a report could not be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line (or a whole file, `line` = `None`) does not have the expected shape.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number in a JSONL file.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A samples file could not be read (the data layer's error names file, line and field).
    #[error(transparent)]
    Samples(#[from] codeplan_data::DataError),
    /// The input or settings are inconsistent (no baseline, two variants with one name, ...).
    #[error("report input: {0}")]
    Input(String),
}

impl ReportError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A malformed line of `path`.
    pub(crate) fn line(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        ReportError::Malformed {
            path: path.to_path_buf(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// A malformed file.
    pub(crate) fn file(path: &std::path::Path, message: impl Into<String>) -> Self {
        ReportError::Malformed {
            path: path.to_path_buf(),
            line: None,
            message: message.into(),
        }
    }
}
