//! Judges: how a sample's program is run against a problem's tests and turned into a verdict.
//!
//! - [`JudgeKind::Apps`] reproduces the APPS reference harness exactly (result codes, prelude,
//!   standard-input rewrite, I/O emulation, comparison cascade, 4 s / 11 s limits).
//! - [`JudgeKind::Strict`] runs the program as a real `__main__` script per test, with CPU
//!   limits, byte stdin/stdout and a token comparison; assertion-style tests for HumanEval/MBPP.

mod apps;
mod strict;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use codeplan_data::{Problem, Sample};

use crate::pool::Slot;

/// Which judging semantics to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    /// The APPS reference harness, quirks included.
    Apps,
    /// Real `__main__` scripts, CPU limits, token comparison, assertion tests.
    Strict,
}

impl JudgeKind {
    /// The name used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            JudgeKind::Apps => "apps",
            JudgeKind::Strict => "strict",
        }
    }
}

/// Time and output limits of a judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeLimits {
    /// apps: the per-test wall-clock alarm (reference: 4 s). strict: the per-test CPU limit.
    pub test_timeout_s: f64,
    /// apps: the whole-sample wall limit (reference: 11 s). strict: unused.
    pub sample_timeout_s: f64,
    /// strict: wall-clock backstop per test, as a multiple of the CPU limit (plus 1 s).
    pub wall_factor: f64,
    /// Captured output cap per test, bytes (a program printing more is stopped).
    pub output_bytes: u64,
    /// strict: relative/absolute tolerance where the expected token is a float.
    pub float_tol: f64,
}

impl Default for JudgeLimits {
    fn default() -> Self {
        JudgeLimits {
            test_timeout_s: 4.0,
            sample_timeout_s: 11.0,
            wall_factor: 3.0,
            output_bytes: 16 << 20,
            float_tol: 1e-6,
        }
    }
}

impl JudgeLimits {
    /// The same limits with every time limit doubled (for re-running timed-out tests).
    pub fn doubled(&self) -> JudgeLimits {
        JudgeLimits {
            test_timeout_s: self.test_timeout_s * 2.0,
            sample_timeout_s: self.sample_timeout_s * 2.0,
            ..self.clone()
        }
    }
}

/// What happened in one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// Correct output.
    Pass,
    /// Ran to completion with a wrong answer.
    WrongAnswer,
    /// Raised an exception or exited non-zero.
    RuntimeError,
    /// Hit the time limit.
    Timeout,
    /// Printed more than the output cap.
    OutputLimit,
    /// Ran out of memory.
    MemoryLimit,
    /// Did not compile / load (the whole sample).
    CompileError,
    /// Not run (the sample ended before reaching it).
    NotRun,
}

/// One test's verdict, with what a user needs to see why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestVerdict {
    /// Outcome.
    pub status: TestStatus,
    /// Wall time of the test, seconds.
    pub time_s: f64,
    /// Peak resident memory of the process so far, KiB.
    pub memory_kb: u64,
    /// Error message or stderr tail, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// apps: the comparison-cascade stage that accepted the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

impl TestVerdict {
    /// A test that produced nothing to measure (not run, or lost with its sample).
    pub fn without_run(status: TestStatus) -> TestVerdict {
        TestVerdict {
            status,
            time_s: 0.0,
            memory_kb: 0,
            stderr_tail: None,
            stage: None,
        }
    }
}

/// The overall outcome of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleStatus {
    /// Every test passed.
    Passed,
    /// At least one test failed, errored or timed out.
    Failed,
    /// The program did not compile or load (`[-2]`).
    CompileError,
    /// apps: the whole-sample limit expired (`[-1] * 21`).
    GlobalTimeout,
    /// apps: the process ended without reporting (`[-1] * 21`).
    NoResult,
    /// The engine failed twice on this sample; not the model's fault, excluded from nothing.
    InternalError,
}

/// The verdict of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleVerdict {
    /// The problem's id.
    pub problem_id: String,
    /// The sample's index.
    pub sample_idx: usize,
    /// sha256 of the code, hex.
    pub code_sha256: String,
    /// `apps` or `strict`.
    pub judge: JudgeKind,
    /// Whether every test passed.
    pub passed: bool,
    /// Overall outcome.
    pub status: SampleStatus,
    /// apps: the list the reference harness would have stored (`true`, `false`, `-1`, `[-2]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps_result: Option<Vec<Value>>,
    /// apps: why there was no result (`killed_after_join_timeout`, `child_exited_without_result`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_result_cause: Option<String>,
    /// Per-test verdicts.
    pub tests: Vec<TestVerdict>,
    /// Tail of the program's stderr (or the load error).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub stderr_tail: String,
    /// Wall time of the whole sample, seconds.
    pub wall_s: f64,
    /// How many times the engine ran it (2 after a worker fault).
    pub attempts: u32,
    /// The engine error, for [`SampleStatus::InternalError`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_error: Option<String>,
    /// The outcome when re-run at twice the time limits (only for samples that timed out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_passed: Option<bool>,
}

impl SampleVerdict {
    /// Whether any test (or the sample) ran out of time.
    pub fn timed_out(&self) -> bool {
        self.status == SampleStatus::GlobalTimeout
            || self.tests.iter().any(|t| t.status == TestStatus::Timeout)
    }

    /// The sample reduced for the metrics: passed, tests that passed, and the number of
    /// entries in the APPS-style result list.
    pub fn score(&self) -> crate::metrics::SampleScore {
        let (passed_tests, total_entries) = self.passed_and_entries();
        crate::metrics::SampleScore {
            correct: self.passed,
            passed_tests,
            total_entries,
        }
    }

    /// Tests that passed, and the number of entries in the APPS-style result list.
    fn passed_and_entries(&self) -> (usize, usize) {
        match &self.apps_result {
            Some(r) => (
                r.iter().filter(|v| **v == Value::Bool(true)).count(),
                r.len(),
            ),
            None => {
                let passed = self
                    .tests
                    .iter()
                    .filter(|t| t.status == TestStatus::Pass)
                    .count();
                (passed, self.tests.len().max(1))
            }
        }
    }
}

/// A judge's failure that is the engine's fault, not the program's: retry on a fresh worker.
#[derive(Debug)]
pub struct WorkerFault(pub String);

/// Runs `sample` for `problem` under `kind` on the worker in `slot`.
///
/// A deadline that expires kills the worker (the slot starts a fresh one when next asked);
/// that is the program's verdict. A [`WorkerFault`] is the engine's: the caller retries.
pub fn run(
    kind: JudgeKind,
    slot: &mut Slot,
    problem: &Problem,
    sample: &Sample,
    limits: &JudgeLimits,
) -> Result<SampleVerdict, WorkerFault> {
    match kind {
        JudgeKind::Apps => apps::run(slot, problem, sample, limits),
        JudgeKind::Strict => strict::run(slot, problem, sample, limits),
    }
}

/// Whether `kind` can judge `problem` (apps needs input/output tests).
pub fn check_judgeable(kind: JudgeKind, problem: &Problem) -> Result<(), String> {
    if kind == JudgeKind::Apps && matches!(problem.tests, codeplan_data::Tests::Check(_)) {
        return Err("has assertion-style tests, which the apps judge cannot run; use --judge strict (or auto)".into());
    }
    Ok(())
}

/// sha256 of `code` as lowercase hex.
pub fn sha256_hex(code: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(code.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A verdict for `sample` with nothing judged yet.
pub fn blank_verdict(kind: JudgeKind, problem: &Problem, sample: &Sample) -> SampleVerdict {
    SampleVerdict {
        problem_id: problem.id.clone(),
        sample_idx: sample.sample_idx,
        code_sha256: sha256_hex(&sample.code),
        judge: kind,
        passed: false,
        status: SampleStatus::Failed,
        apps_result: None,
        no_result_cause: None,
        tests: Vec::new(),
        stderr_tail: String::new(),
        wall_s: 0.0,
        attempts: 1,
        internal_error: None,
        rerun_passed: None,
    }
}
