//! Sandboxed execution of model-written Python, judged like APPS (`apps`) or strictly
//! (`strict`), with the metrics every codeplan report rests on.
//!
//! **This crate executes untrusted code.** It does so only inside OS-level isolation
//! (namespaces, read-only filesystem, Landlock, seccomp, rlimits, cgroups), reports which
//! layers are in force, and can refuse to run without all of them.

pub mod compare;
pub mod eval;
pub mod judge;
pub mod metrics;
pub mod pool;
pub mod python;
pub mod sandbox;
pub mod summary;
pub mod worker;

/// Errors of the execution engine.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The Python interpreter is missing or unusable.
    #[error("python: {0}")]
    Python(String),
    /// The sandbox could not be set up.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A required isolation layer is not available.
    #[error("sandbox layers unavailable: {0} (run without --require-sandbox to accept this)")]
    MissingLayers(String),
    /// Writing results failed.
    #[error("output: {0}")]
    Output(String),
    /// A problem cannot be judged the requested way.
    #[error("problem {problem_id}: {message}")]
    Unjudgeable { problem_id: String, message: String },
}
