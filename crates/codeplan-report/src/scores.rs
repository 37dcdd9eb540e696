//! Per-problem results and pass@k of one variant, from its verdicts.
//!
//! The grouping follows `codeplan eval`'s summary exactly: samples the engine failed on
//! (status `internal_error`) are left out before anything is counted, a problem is scored only
//! if it has at least one other sample, its samples are ordered by index (the first one feeds
//! strict accuracy and the test-case average), and the metrics themselves are
//! codeplan-exec's (`metrics::report`, with its unbiased pass@k estimator).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use codeplan_data::Problem;
use codeplan_exec::judge::{SampleStatus, SampleVerdict};
use codeplan_exec::metrics::{self, Metrics, ProblemScores};

use crate::error::ReportError;
use crate::report::{GroupScores, ProblemResult, SampleResult};

/// A variant's scores.
pub(crate) struct Scored {
    /// Over every scored problem.
    pub overall: GroupScores,
    /// Per difficulty label.
    pub by_difficulty: BTreeMap<String, GroupScores>,
    /// Per problem, in evaluation-set order (problems without any verdict left out).
    pub problems: Vec<ProblemResult>,
    /// Internal errors (excluded).
    pub internal_errors: usize,
    /// Evaluation problems without a scored sample.
    pub unscored: Vec<String>,
}

/// Scores `verdicts` (read from `path`, with line numbers) against the evaluation set.
pub(crate) fn score(
    path: &Path,
    verdicts: &[(usize, SampleVerdict)],
    eval: &[Problem],
    ks: &[usize],
) -> Result<Scored, ReportError> {
    let index: HashMap<&str, usize> = eval
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut per_problem: Vec<Vec<&SampleVerdict>> = vec![Vec::new(); eval.len()];
    for (line, v) in verdicts {
        let Some(&i) = index.get(v.problem_id.as_str()) else {
            // A verdict for another problem means the files of two runs got mixed up.
            return Err(ReportError::line(
                path,
                *line,
                format!("problem {} is not in the evaluation set", v.problem_id),
            ));
        };
        per_problem[i].push(v);
    }
    let mut problems = Vec::new();
    let mut scores = Vec::new();
    let mut unscored = Vec::new();
    let mut internal_errors = 0;
    for (p, mut vs) in eval.iter().zip(per_problem) {
        vs.sort_by_key(|v| v.sample_idx);
        let scored: Vec<&SampleVerdict> = vs
            .iter()
            .copied()
            .filter(|v| v.status != SampleStatus::InternalError)
            .collect();
        internal_errors += vs.len() - scored.len();
        if scored.is_empty() {
            unscored.push(p.id.clone());
        } else {
            scores.push(ProblemScores {
                problem_id: p.id.clone(),
                difficulty: p.difficulty_label().to_owned(),
                samples: scored.iter().map(|v| v.score()).collect(),
            });
        }
        if !vs.is_empty() {
            problems.push(ProblemResult {
                problem_id: p.id.clone(),
                difficulty: p.difficulty_label().to_owned(),
                n: scored.len(),
                c: scored.iter().filter(|v| v.passed).count(),
                samples: vs
                    .iter()
                    .map(|v| SampleResult {
                        sample_idx: v.sample_idx,
                        passed: v.passed,
                        status: v.status,
                    })
                    .collect(),
            });
        }
    }
    let report = metrics::report(&scores, ks);
    Ok(Scored {
        overall: group(&report.overall),
        by_difficulty: report
            .by_difficulty
            .iter()
            .map(|(d, m)| (d.clone(), group(m)))
            .collect(),
        problems,
        internal_errors,
        unscored,
    })
}

fn group(m: &Metrics) -> GroupScores {
    GroupScores {
        problems: m.problems,
        samples: m.samples,
        correct_samples: m.correct_samples,
        pass_at_k: m.pass_at_k.clone(),
        strict_accuracy: m.strict_accuracy,
        test_case_average: m.test_case_average,
    }
}

/// The first scored sample of a problem (lowest index, internal errors skipped).
pub(crate) fn first_scored(p: &ProblemResult) -> Option<&SampleResult> {
    p.samples
        .iter()
        .find(|s| s.status != SampleStatus::InternalError)
}
