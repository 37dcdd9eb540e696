//! The CodePLAN experiment as data: what to compare, which stages that takes, and which of
//! them are already done.
//!
//! - [`Experiment`] reads an experiment file (data, teacher, student, decoding, judging,
//!   variants and ablations) with `--set key=value` overrides; unknown keys are errors that
//!   name the key.
//! - [`plan()`] turns it into [`Stage`]s — distill, train, generate, eval — each keyed by a
//!   hash of its inputs (settings, file contents, the keys of the stages it reads, codeplan's
//!   version) and shared by every variant that needs the same work.
//! - [`record`] marks finished stages (`stage.json`, written last and atomically), which is
//!   what makes a rerun skip them and a killed run resume.
//!
//! The CLI runs the stages with the verbs' own code; this crate never prints.

#![warn(missing_docs)]

pub mod error;
pub mod experiment;
pub mod hashes;
pub mod plan;
pub mod record;

pub use error::{Result, RunError};
pub use experiment::{Ablation, Experiment, ReportSettings, StudentExport, Variant, VariantSpec};
pub use hashes::FileHashes;
pub use plan::{plan, Plan, Stage, StageKind, VariantPlan};
pub use record::{StageRecord, StageStatus};
