//! The one problem type shared by every benchmark.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The difficulty label of problems from a benchmark without levels (HumanEval, MBPP).
pub const UNRATED: &str = "unrated";

/// Whether the groups `labels` are [`UNRATED`] alone: that one group is the overall row again,
/// so reports leave it out.
pub fn only_unrated<'a>(labels: impl IntoIterator<Item = &'a str>) -> bool {
    let mut labels = labels.into_iter();
    labels.next() == Some(UNRATED) && labels.next().is_none()
}

/// Which benchmark (or user file) a problem came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// APPS (Hendrycks et al., 2021), JSONL or folder layout.
    Apps,
    /// OpenAI HumanEval.
    HumanEval,
    /// MBPP, sanitized split in HumanEval-like form.
    Mbpp,
}

/// A programming problem: statement, tests and known-correct solutions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The dataset's own id as text: `"4787"` (APPS), `"HumanEval/0"`, `"MbppEval/2"`.
    pub id: String,
    /// Where the problem came from.
    pub source: Source,
    /// APPS split (`train`/`test`) when known.
    pub split: Option<String>,
    /// The natural-language statement (for HumanEval/MBPP: the prompt with signature and docstring).
    pub question: String,
    /// Code the answer must start from (APPS starter code; HumanEval/MBPP prompt). May be empty.
    pub starter_code: String,
    /// `introductory`, `interview`, `competition` for APPS; `None` where the benchmark has none.
    pub difficulty: Option<String>,
    /// How a program is judged.
    pub tests: Tests,
    /// Known-correct reference programs, complete and runnable as given.
    pub solutions: Vec<String>,
}

/// The tests of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tests {
    /// APPS-style input/output tests (standard input, or call-based when `fn_name` is set).
    Io(IoTests),
    /// Assertion-style tests: `check(candidate)` code run after the program.
    Check(CheckTests),
}

/// APPS `input_output` tests, kept as parsed JSON so the judge can reproduce APPS' quirks exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoTests {
    /// For call-based problems, the function (or `Solution` method) to call.
    pub fn_name: Option<String>,
    /// One entry per test: stdin text (or list of lines), or the argument list for call-based tests.
    pub inputs: Vec<Value>,
    /// One entry per test: expected stdout text (or list of lines), or the expected return value(s).
    pub outputs: Vec<Value>,
}

/// Assertion-style tests in the HumanEval form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckTests {
    /// Code defining `check(candidate)`, which asserts on the candidate's behaviour.
    pub test: String,
    /// The function passed to `check`.
    pub entry_point: String,
}

impl Problem {
    /// Number of test cases (an assertion-style suite counts as one).
    pub fn test_count(&self) -> usize {
        match &self.tests {
            Tests::Io(io) => io.inputs.len(),
            Tests::Check(_) => 1,
        }
    }

    /// The difficulty label used for grouping in reports ([`UNRATED`] when the benchmark has none).
    pub fn difficulty_label(&self) -> &str {
        self.difficulty.as_deref().unwrap_or(UNRATED)
    }
}

impl IoTests {
    /// Whether the tests call a function instead of feeding standard input.
    pub fn is_call_based(&self) -> bool {
        self.fn_name.is_some()
    }
}
