//! What `codeplan distill` writes: `plans.jsonl` (the plans kept, what `codeplan train`
//! reads) and `candidates.jsonl` (every candidate plan and what became of it).

use serde::{Deserialize, Serialize};

use crate::leak::Leak;
use crate::request::Usage;

/// Token use of one plan: the plan request and its validation request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanUsage {
    /// The plan request.
    pub plan: Usage,
    /// The validation-code request (zero without validation).
    pub code: Usage,
}

/// How the validation code fared on the problem's tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The program the teacher wrote from the problem and the plan.
    pub code: String,
    /// Whether it passed every test.
    pub passed: bool,
    /// Tests passed / tests.
    pub pass_fraction: f64,
    /// Tests passed.
    pub tests_passed: usize,
    /// Tests.
    pub tests_total: usize,
    /// The judge's overall status (`passed`, `failed`, `compile_error`, …).
    pub status: String,
    /// Each test's status, in order.
    pub test_statuses: Vec<String>,
}

/// One line of `plans.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The problem.
    pub problem_id: String,
    /// The plan text.
    pub plan: String,
    /// Which reference solution (index into the problem's solutions) the plan explains;
    /// `None` for forward reasoning.
    pub solution_idx: Option<usize>,
    /// Which sample of that prompt.
    pub sample_idx: usize,
    /// `backward` or `forward`.
    pub reasoning: String,
    /// Whether the plan's code met the acceptance policy (false: kept unvalidated or as the
    /// best of a problem where none passed).
    pub validated: bool,
    /// The validation code and its verdicts (`None` when validation was off).
    pub validation: Option<Validation>,
    /// The teacher's model.
    pub teacher_model: String,
    /// sha256 of the prompt templates.
    pub template_hash: String,
    /// Tokens used.
    pub usage: PlanUsage,
    /// The problem's difficulty, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<String>,
}

/// What became of a candidate plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Kept: its code met the acceptance policy (or validation was off).
    Kept,
    /// Kept although unvalidated: no plan of the problem passed (policy `unvalidated`).
    KeptUnvalidated,
    /// Kept as the best-scoring plan of a problem where none passed (policy `best`).
    KeptBest,
    /// Its code did not meet the acceptance policy.
    FailedValidation,
    /// Rejected by the leak guard.
    Leak {
        /// The rule it broke.
        leak: Leak,
    },
    /// The teacher's answer to the plan request was unusable.
    BadPlanAnswer {
        /// `empty`, `truncated` or `refused`.
        kind: String,
    },
    /// The answer to the validation request was unusable.
    BadCodeAnswer {
        /// `empty`, `truncated` or `refused`.
        kind: String,
    },
    /// A request got no answer (retries exhausted or refused by the server).
    RequestFailed {
        /// `plan` or `code`.
        stage: String,
        /// The error.
        error: String,
    },
    /// Not asked yet: the run stopped at its budget, or exported its requests for batching.
    Pending {
        /// `plan` or `code`.
        stage: String,
    },
}

impl Outcome {
    /// The outcome's name (the JSON tag), for counting.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::KeptUnvalidated => "kept_unvalidated",
            Outcome::KeptBest => "kept_best",
            Outcome::FailedValidation => "failed_validation",
            Outcome::Leak { .. } => "leak",
            Outcome::BadPlanAnswer { .. } => "bad_plan_answer",
            Outcome::BadCodeAnswer { .. } => "bad_code_answer",
            Outcome::RequestFailed { .. } => "request_failed",
            Outcome::Pending { .. } => "pending",
        }
    }

    /// Whether the plan goes into `plans.jsonl`.
    pub fn is_kept(&self) -> bool {
        matches!(
            self,
            Outcome::Kept | Outcome::KeptUnvalidated | Outcome::KeptBest
        )
    }
}

/// One line of `candidates.jsonl`: a candidate plan, its answers and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// The problem.
    pub problem_id: String,
    /// The candidate's number within its problem.
    pub candidate: usize,
    /// The reference solution it explains (backward reasoning).
    pub solution_idx: Option<usize>,
    /// The sample of that prompt.
    pub sample_idx: usize,
    /// The problem's difficulty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<String>,
    /// The plan request's key in the ledger.
    pub plan_key: String,
    /// The plan text, when the teacher answered.
    pub plan: Option<String>,
    /// The validation request's key, when there was one.
    pub code_key: Option<String>,
    /// The validation program and its verdicts, when judged.
    pub validation: Option<Validation>,
    /// Tokens used.
    pub usage: PlanUsage,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}
