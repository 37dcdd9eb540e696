//! The teacher side of CodePLAN: solution plans written by a large model, validated by running
//! the code they lead to, and asked for economically.
//!
//! - [`prompts`]: backward reasoning (explain a reference solution), forward reasoning, and the
//!   validation prompt (code from the problem and the plan), as Jinja templates.
//! - [`client`]: the OpenAI-compatible HTTP client (timeouts, concurrency, requests/tokens per
//!   minute, retries with back-off honouring `Retry-After`); [`local`]: a model in-process.
//! - [`store`]: the append-only fsynced ledger and the content-addressed cache;
//!   [`ask`]: asking a set of questions through them, within the [`budget`].
//! - [`leak`]: rejecting plans that restate the code; [`distill`]: the run itself;
//!   [`records`] and [`summary`]: what it writes; [`batch`]: OpenAI Batch files.

pub mod ask;
pub mod batch;
pub mod budget;
pub mod client;
pub mod distill;
pub mod leak;
pub mod local;
pub mod prompts;
pub mod records;
pub mod request;
pub mod retry;
pub mod store;
pub mod summary;

use std::path::{Path, PathBuf};

pub use ask::{Source, Teacher};
pub use distill::{distill, DistillConfig, NonePass, PlanSampling, Report, Run, TeacherInfo};
pub use prompts::{Reasoning, Templates};

/// Errors of the teacher crate; each names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    /// A setting or template is wrong.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The ledger is damaged.
    #[error("damaged ledger: {0}")]
    Ledger(String),
    /// A batch results file is malformed.
    #[error("{0}")]
    Batch(String),
    /// A problem cannot be judged.
    #[error(transparent)]
    Exec(#[from] codeplan_exec::ExecError),
}

impl TeacherError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> TeacherError {
        TeacherError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `plans.jsonl`, `candidates.jsonl`, `summary.json` and `summary.md` into `out_dir`,
/// each atomically (a crash leaves the old file or the new one, never half of one).
pub fn write_outputs(report: &Report, out_dir: &Path) -> Result<(), TeacherError> {
    std::fs::create_dir_all(out_dir).map_err(|e| TeacherError::io(out_dir, e))?;
    let write = |name: &str, data: &[u8]| {
        let path = out_dir.join(name);
        codeplan_exec::eval::write_atomic(&path, data).map_err(|e| TeacherError::io(&path, e))
    };
    write("plans.jsonl", &jsonl(&report.plans))?;
    write("candidates.jsonl", &jsonl(&report.candidates))?;
    write_summary(&report.summary, out_dir)
}

/// Writes `summary.json` and `summary.md` into `out_dir`, each atomically (what
/// [`write_outputs`] writes for them; `codeplan merge` writes a merged summary through it).
pub fn write_summary(summary: &summary::Summary, out_dir: &Path) -> Result<(), TeacherError> {
    let write = |name: &str, data: &[u8]| {
        let path = out_dir.join(name);
        codeplan_exec::eval::write_atomic(&path, data).map_err(|e| TeacherError::io(&path, e))
    };
    write(
        "summary.json",
        serde_json::to_string_pretty(summary)
            .expect("summaries serialise")
            .as_bytes(),
    )?;
    write("summary.md", summary.markdown().as_bytes())
}

fn jsonl<T: serde::Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, item).expect("records serialise");
        out.push(b'\n');
    }
    out
}
