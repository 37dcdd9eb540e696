//! The report's data model: what `report.json` holds, and what the renderers and [`crate::compare`] read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use codeplan_exec::judge::SampleStatus;
use codeplan_teacher::summary::DifficultyStats;

use crate::contamination::ContaminationReport;
use crate::BootstrapSettings;

/// The version of the `report.json` layout, raised on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// A finished experiment's report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The experiment's title.
    pub title: String,
    /// The pass@k asked for (each reported only where k <= n for every problem).
    pub ks: Vec<usize>,
    /// Difficulty labels in display order (APPS order first, then the rest alphabetically).
    pub difficulties: Vec<String>,
    /// One entry per variant, in input order.
    pub variants: Vec<VariantReport>,
    /// Each non-baseline variant's pass@1 against the baseline.
    pub improvements: Vec<Improvement>,
    /// Side-by-side examples.
    pub examples: Vec<Example>,
    /// The contamination check.
    pub contamination: ContaminationReport,
    /// The bootstrap settings the confidence intervals were computed with.
    pub bootstrap: BootstrapSettings,
    /// The run's manifest, as given.
    pub manifest: serde_json::Value,
}

/// One variant's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// Its name (`baseline`, `codeplan`, ...).
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// Whether it is the baseline.
    pub baseline: bool,
    /// The files it was computed from.
    pub files: VariantFiles,
    /// Scores over every scored problem.
    pub overall: GroupScores,
    /// Scores per difficulty label.
    pub by_difficulty: BTreeMap<String, GroupScores>,
    /// Samples the engine failed on (excluded from every score, as `codeplan eval` does).
    pub internal_errors: usize,
    /// Evaluation problems with no scored sample (no verdict, or only internal errors).
    pub unscored_problems: Vec<String>,
    /// Per-problem results, in evaluation-set order: what every score is computed from.
    pub problems: Vec<ProblemResult>,
    /// Plan statistics of the distill stage it was trained on, if any.
    pub plans: Option<PlanStats>,
    /// Its training loss curve (`train/loss` by step), if any.
    pub loss: Option<Vec<(u64, f64)>>,
}

/// The files a variant's results were read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantFiles {
    /// Samples JSONL.
    pub samples: String,
    /// verdicts.jsonl.
    pub verdicts: String,
    /// Training metrics.jsonl.
    pub train_metrics: Option<String>,
    /// Distill summary.json.
    pub plans_summary: Option<String>,
}

/// Scores over a group of problems, computed by codeplan-exec's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScores {
    /// Problems the scores rest on.
    pub problems: usize,
    /// Samples they rest on (internal errors excluded).
    pub samples: usize,
    /// Samples that passed.
    pub correct_samples: usize,
    /// Mean unbiased pass@k over problems, for the asked k that are defined (k <= n).
    pub pass_at_k: BTreeMap<usize, f64>,
    /// Share of problems whose first sample passed.
    pub strict_accuracy: f64,
    /// Mean share of passed tests of each problem's first sample.
    pub test_case_average: f64,
}

/// One problem's results for one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemResult {
    /// The problem's id.
    pub problem_id: String,
    /// Its difficulty label (`all` where the benchmark has none).
    pub difficulty: String,
    /// Scored samples (internal errors excluded).
    pub n: usize,
    /// Of those, how many passed.
    pub c: usize,
    /// Every sample's outcome, internal errors included, by sample index.
    pub samples: Vec<SampleResult>,
}

/// One sample's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// The sample's index.
    pub sample_idx: usize,
    /// Whether every test passed.
    pub passed: bool,
    /// The judge's overall status.
    pub status: SampleStatus,
}

/// A variant's pass@1 against the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Improvement {
    /// The variant.
    pub variant: String,
    /// The baseline.
    pub baseline: String,
    /// Over every problem both scored; `None` when they share none.
    pub overall: Option<Difference>,
    /// Per difficulty label, where both scored problems of that label.
    pub by_difficulty: BTreeMap<String, Difference>,
}

/// A paired difference in pass@1 with its bootstrap confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Problems both variants scored (the pairs resampled).
    pub problems: usize,
    /// The baseline's mean pass@1 over those problems.
    pub baseline: f64,
    /// The variant's mean pass@1 over those problems.
    pub variant: f64,
    /// `variant - baseline`, as a fraction (× 100 = percentage points).
    pub absolute: f64,
    /// Percentile confidence interval of `absolute`.
    pub absolute_ci: [f64; 2],
    /// `variant / baseline - 1`; `None` when the baseline's pass@1 is 0.
    pub relative: Option<f64>,
    /// Percentile confidence interval of `relative`; `None` when some resample's baseline is 0.
    pub relative_ci: Option<[f64; 2]>,
    /// Why `relative` or its interval is missing.
    pub relative_note: Option<String>,
    /// Resamples whose baseline pass@1 was 0.
    pub zero_baseline_resamples: usize,
    /// A plain-language verdict that claims no more than the interval supports.
    pub verdict: String,
}

/// A side-by-side example: one problem, the baseline's and a variant's first samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The problem's id.
    pub problem_id: String,
    /// Its difficulty label.
    pub difficulty: String,
    /// The question, truncated.
    pub question: String,
    /// Why it was chosen (e.g. "only the variant's first sample passed").
    pub why: String,
    /// The baseline's side.
    pub baseline: ExampleSide,
    /// The variant's side.
    pub variant: ExampleSide,
}

/// One variant's side of an [`Example`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleSide {
    /// The variant's name.
    pub name: String,
    /// The sample shown (the problem's first scored sample).
    pub sample_idx: usize,
    /// Whether it passed.
    pub passed: bool,
    /// Its status.
    pub status: SampleStatus,
    /// Passed samples of this problem.
    pub c: usize,
    /// Scored samples of this problem.
    pub n: usize,
    /// Its code, truncated.
    pub code: String,
}

/// Plan statistics of one distill run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStats {
    /// The summary.json read.
    pub source: String,
    /// `backward` or `forward`.
    pub reasoning: Option<String>,
    /// The teacher model.
    pub teacher: Option<String>,
    /// Problems given to the teacher.
    pub problems: Option<usize>,
    /// Problems with at least one kept plan.
    pub problems_with_plans: Option<usize>,
    /// Candidate plans.
    pub candidates: Option<usize>,
    /// Plans kept.
    pub plans_kept: Option<usize>,
    /// Kept plans whose code passed validation.
    pub plans_validated: Option<usize>,
    /// Kept plans per problem that has any: mean, min, max.
    pub plans_per_problem: Option<(f64, usize, usize)>,
    /// Candidates whose validation code was judged.
    pub judged: usize,
    /// Of those, how many passed.
    pub passed: usize,
    /// `passed / judged`.
    pub validation_pass_rate: Option<f64>,
    /// The same per difficulty.
    pub per_difficulty: BTreeMap<String, DifficultyStats>,
}

/// Difficulty labels in display order: APPS' three first, then the rest alphabetically.
pub(crate) fn order_difficulties<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    const APPS: [&str; 3] = ["introductory", "interview", "competition"];
    let set: std::collections::BTreeSet<&str> = labels.into_iter().collect();
    let mut out: Vec<String> = APPS
        .iter()
        .filter(|d| set.contains(*d))
        .map(|d| d.to_string())
        .collect();
    out.extend(
        set.iter()
            .filter(|d| !APPS.contains(d))
            .map(|d| d.to_string()),
    );
    out
}

/// How a sample's outcome reads in a report: `passed`, `failed`, or `failed (compile_error)`.
pub(crate) fn outcome(passed: bool, status: SampleStatus) -> String {
    let name = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match (passed, status) {
        (true, _) => "passed".to_owned(),
        (false, SampleStatus::Failed) => "failed".to_owned(),
        (false, _) => format!("failed ({name})"),
    }
}
