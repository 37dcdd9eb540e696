//! The data layer of codeplan: one [`Problem`] type for every benchmark, loaders, selection and
//! samples files.
//!
//! - [`load_problems`] reads APPS (codeparrot JSONL, or the original `<split>/<id>/` folders),
//!   HumanEval (`.jsonl` / `.jsonl.gz`) and MBPP in the CodeT form, detecting the format from the
//!   path and the first record unless a [`Format`] is given. [`load_all`] / [`merge_loaded`]
//!   combine several sources and refuse duplicate problem ids.
//! - [`Selection`] picks problems by id, difficulty and count; [`Shard`] deals them out to the
//!   parts of a split run, and [`ShardSet`] checks and merges the parts' outputs.
//! - [`read_samples`] / [`write_samples`] read and write samples JSONL (`{"problem_id",
//!   "sample_idx", "code"}`, or human-eval `{"task_id", "completion"}`), optionally taking the
//!   code out of markdown fences ([`CodeExtraction`]).
//!
//! Every bad-input error names the file, line, problem id and field ([`Invalid`]); with
//! `skip_invalid` bad records are left out and listed ([`Skipped`]) rather than dropped silently.
//! The library never prints.
//!
//! ```
//! use codeplan_data::{load_problems, LoadOptions, Selection, Source};
//! use std::path::Path;
//!
//! let data = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"));
//! let loaded = load_problems(&data.join("apps/test.jsonl"), &LoadOptions::default()).unwrap();
//! assert_eq!(loaded.problems.len(), 8);
//! assert_eq!(loaded.problems[0].source, Source::Apps);
//!
//! let sel = Selection { difficulties: Some(vec!["introductory".into()]), ..Default::default() };
//! let intro = sel.apply(loaded.problems).unwrap();
//! assert_eq!(intro.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["4787", "4790", "4820"]);
//! ```

#![warn(missing_docs)]

mod apps;
mod error;
mod extract;
mod humaneval;
mod json;
mod load;
pub mod problem;
pub mod prompt;
pub mod sample;
mod samples;
mod select;
mod shard;

pub use error::{DataError, DuplicateId, Invalid, InvalidKind, Skipped};
pub use extract::{extract_fenced, CodeExtraction};
pub use humaneval::reindent_body;
pub use load::{load_all, load_problems, merge_loaded, Format, LoadOptions, Loaded};
pub use problem::{only_unrated, CheckTests, IoTests, Problem, Source, Tests, UNRATED};
pub use sample::Sample;
pub use samples::{
    read_samples, solutions_as_samples, write_samples, LoadedSamples, SampleOptions,
};
pub use select::{Selection, APPS_DIFFICULTIES};
pub use shard::{
    MergedLines, SelectedProblem, Shard, ShardError, ShardRecord, ShardSet, SHARD_RECORD,
};
