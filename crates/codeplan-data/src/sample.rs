//! Model samples to judge: one program per (problem, sample index).

use serde::{Deserialize, Serialize};

/// One program written for one problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The problem's id, as in [`crate::Problem::id`].
    pub problem_id: String,
    /// Index of this sample among the problem's samples (0-based).
    pub sample_idx: usize,
    /// The complete program to run.
    pub code: String,
}
