//! APPS metrics (spec §7): pass@k, strict accuracy and test case average.
//!
//! Conventions, where the reference leaves a case undefined:
//! * A sample whose result list is empty (a problem without tests) is `correct`, as the
//!   reference's `np.all([] > 0)` is; its share of passed tests is taken as 0.0 where the
//!   reference would produce NaN (`np.mean([])`).
//! * A problem with no samples counts as failed: 0 in strict accuracy, test case average and
//!   every pass@k. It does not restrict which k are reported (that rule, k <= n, is applied over
//!   the problems that have samples) and it is counted in [`Metrics::problems_without_samples`].
//! * With no problems at all, every average is 0.0 and no pass@k is reported.

use std::collections::BTreeMap;

use serde::Serialize;

/// The unbiased pass@k estimator of Chen et al. (2021) for `n` samples of which `c` are correct.
///
/// `1` if `n - c < k`, else `1 - prod_{i=n-c+1}^{n} (1 - k/i)`, multiplied in that order (as
/// the Codex reference's numpy code does, up to numpy's summation order).
///
/// # Panics
/// If `k == 0`, `k > n` or `c > n`: the estimate is undefined there, and [`compute`] never asks.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(
        k >= 1 && k <= n,
        "pass@k needs 1 <= k <= n (k = {k}, n = {n})"
    );
    assert!(c <= n, "pass@k needs c <= n (c = {c}, n = {n})");
    if n - c < k {
        return 1.0;
    }
    let product: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - product
}

/// One judged sample, reduced from its APPS result list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SampleScore {
    /// Every entry of the result list passed (vacuously true for an empty list, as in the reference).
    pub correct: bool,
    /// Entries that passed (`true`; the reference counts entries `> 0`).
    pub passed_tests: usize,
    /// Length of the result list: `[-2]` has 1 entry, a whole-sample timeout `[-1]*21` has 21.
    pub total_entries: usize,
}

impl SampleScore {
    /// Reduces an APPS result list (`true`, `false`, `-1`, `-2` as JSON values); an entry passes if `> 0`.
    pub fn from_apps_results(results: &[serde_json::Value]) -> Self {
        // Python compares with `> 0`: True passes, False/-1/-2 fail, and so would any other
        // number <= 0; a positive number would pass, though the harness never produces one.
        let passes = |v: &serde_json::Value| match v {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| x > 0.0),
            _ => false,
        };
        Self::from_passes(results.iter().map(passes))
    }

    /// Builds a score from one pass/fail flag per result entry.
    pub fn from_passes(passes: impl IntoIterator<Item = bool>) -> Self {
        let (mut passed_tests, mut total_entries) = (0, 0);
        for p in passes {
            total_entries += 1;
            passed_tests += usize::from(p);
        }
        SampleScore {
            correct: passed_tests == total_entries,
            passed_tests,
            total_entries,
        }
    }

    /// Share of entries that passed; 0.0 for an empty result list (the reference gives NaN).
    pub fn test_fraction(&self) -> f64 {
        if self.total_entries == 0 {
            0.0
        } else {
            self.passed_tests as f64 / self.total_entries as f64
        }
    }
}

/// All judged samples of one problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemScores {
    /// The problem's id.
    pub problem_id: String,
    /// Its difficulty label (`introductory`, `interview`, `competition`).
    pub difficulty: String,
    /// Its samples in `sample_idx` order; the first one feeds the one-sample metrics.
    pub samples: Vec<SampleScore>,
}

/// Aggregate metrics over a set of problems.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Number of problems.
    pub problems: usize,
    /// Number of samples over all problems.
    pub samples: usize,
    /// Mean pass@k over problems, only for requested k with 1 <= k <= n for every problem with samples.
    pub pass_at_k: BTreeMap<usize, f64>,
    /// Share of problems whose first sample is correct (APPS "strict accuracy").
    pub strict_accuracy: f64,
    /// Mean over problems of the first sample's share of passed entries (APPS "test case average").
    pub test_case_average: f64,
    /// Correct samples over all problems and samples.
    pub correct_samples: usize,
    /// Problems that had no sample at all (counted as failed).
    pub problems_without_samples: usize,
}

/// Overall metrics plus one entry per difficulty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Metrics over all problems.
    pub overall: Metrics,
    /// Metrics per difficulty label, each computed over that label's problems only.
    pub by_difficulty: BTreeMap<String, Metrics>,
}

/// Computes [`Metrics`] for `problems`, reporting pass@k for the requested `ks` that are defined.
pub fn compute(problems: &[ProblemScores], ks: &[usize]) -> Metrics {
    let with_samples: Vec<&ProblemScores> =
        problems.iter().filter(|p| !p.samples.is_empty()).collect();
    let min_n = with_samples.iter().map(|p| p.samples.len()).min();
    let mut pass_at = BTreeMap::new();
    if let Some(min_n) = min_n {
        for &k in ks.iter().filter(|&&k| k >= 1 && k <= min_n) {
            let sum: f64 = with_samples
                .iter()
                .map(|p| {
                    let c = p.samples.iter().filter(|s| s.correct).count();
                    pass_at_k(p.samples.len(), c, k)
                })
                .sum();
            // Problems without samples are in the denominator: they count as 0.
            pass_at.insert(k, sum / problems.len() as f64);
        }
    }
    let mean = |f: &dyn Fn(&SampleScore) -> f64| {
        if problems.is_empty() {
            return 0.0;
        }
        let total: f64 = problems
            .iter()
            .map(|p| p.samples.first().map_or(0.0, f))
            .sum();
        total / problems.len() as f64
    };
    Metrics {
        problems: problems.len(),
        samples: problems.iter().map(|p| p.samples.len()).sum(),
        pass_at_k: pass_at,
        strict_accuracy: mean(&|s| if s.correct { 1.0 } else { 0.0 }),
        test_case_average: mean(&SampleScore::test_fraction),
        correct_samples: problems
            .iter()
            .flat_map(|p| &p.samples)
            .filter(|s| s.correct)
            .count(),
        problems_without_samples: problems.len() - with_samples.len(),
    }
}

/// [`compute`] per difficulty label (problems grouped by `difficulty`).
pub fn by_difficulty(problems: &[ProblemScores], ks: &[usize]) -> BTreeMap<String, Metrics> {
    let mut groups: BTreeMap<&str, Vec<ProblemScores>> = BTreeMap::new();
    for p in problems {
        groups.entry(&p.difficulty).or_default().push(p.clone());
    }
    groups
        .into_iter()
        .map(|(d, ps)| (d.to_string(), compute(&ps, ks)))
        .collect()
}

/// The overall metrics and the per-difficulty breakdown together.
pub fn report(problems: &[ProblemScores], ks: &[usize]) -> Report {
    Report {
        overall: compute(problems, ks),
        by_difficulty: by_difficulty(problems, ks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn sample(v: Value) -> SampleScore {
        SampleScore::from_apps_results(v.as_array().unwrap())
    }

    fn problem(id: &str, difficulty: &str, samples: Vec<Value>) -> ProblemScores {
        ProblemScores {
            problem_id: id.into(),
            difficulty: difficulty.into(),
            samples: samples.into_iter().map(sample).collect(),
        }
    }

    #[test]
    fn sample_scores_from_result_lists() {
        assert_eq!(
            sample(json!([-2])),
            SampleScore {
                correct: false,
                passed_tests: 0,
                total_entries: 1
            }
        );
        assert_eq!(
            sample(json!(vec![-1; 21])),
            SampleScore {
                correct: false,
                passed_tests: 0,
                total_entries: 21
            }
        );
        assert_eq!(
            sample(json!([true, false, -1, true])),
            SampleScore {
                correct: false,
                passed_tests: 2,
                total_entries: 4
            }
        );
        assert_eq!(
            sample(json!([true, true])),
            SampleScore {
                correct: true,
                passed_tests: 2,
                total_entries: 2
            }
        );
        // Python's `> 0`: a positive number would count, zero and null would not.
        assert!(sample(json!([1, 0.5])).correct);
        assert_eq!(sample(json!([0, null, "x"])).passed_tests, 0);
        let empty = sample(json!([]));
        assert!(empty.correct);
        assert_eq!(empty.test_fraction(), 0.0);
    }

    #[test]
    fn pass_at_k_values() {
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        assert_eq!(pass_at_k(10, 0, 5), 0.0);
        assert!(close(pass_at_k(2, 1, 1), 0.5));
        assert_eq!(pass_at_k(2, 1, 2), 1.0);
        assert!(close(pass_at_k(10, 3, 1), 0.3)); // pass@1 = c / n
        assert!(close(pass_at_k(200, 37, 1), 37.0 / 200.0));
        // 1 - C(n-c, k) / C(n, k) = 1 - C(7,2)/C(10,2) = 1 - 21/45.
        assert!(close(pass_at_k(10, 3, 2), 1.0 - 21.0 / 45.0));
        // n - c < k: every k-subset contains a correct sample.
        assert_eq!(pass_at_k(10, 8, 3), 1.0);
        assert!(close(pass_at_k(100, 1, 10), 0.1));
        // Monotone in k and in c.
        for k in 1..=20 {
            assert!(pass_at_k(20, 5, k) <= pass_at_k(20, 5, (k + 1).min(20)) + 1e-15);
            assert!(pass_at_k(20, 5, k) <= pass_at_k(20, 6, k) + 1e-15);
        }
    }

    #[test]
    #[should_panic(expected = "1 <= k <= n")]
    fn pass_at_k_rejects_k_above_n() {
        pass_at_k(3, 1, 4);
    }

    #[test]
    #[should_panic(expected = "1 <= k <= n")]
    fn pass_at_k_rejects_k_zero() {
        pass_at_k(3, 1, 0);
    }

    #[test]
    #[should_panic(expected = "c <= n")]
    fn pass_at_k_rejects_c_above_n() {
        pass_at_k(3, 4, 1);
    }

    #[test]
    fn spec_example_one_sample_per_problem() {
        let (t, f) = (true, false);
        let problems = vec![
            problem("0", "interview", vec![json!([-2])]),
            problem("1", "interview", vec![json!([f, f, f])]),
            problem("2", "interview", vec![json!([t, t])]),
            problem(
                "3",
                "interview",
                vec![json!([f, t, f, t, f, f, f, t, f, t, f, t, t, t, f, t])],
            ),
            problem("4", "interview", vec![json!(vec![-1; 21])]),
        ];
        let m = compute(&problems, &[1, 5, 10]);
        assert!(close(m.test_case_average, 0.3));
        assert!(close(m.strict_accuracy, 0.2));
        assert_eq!(m.pass_at_k.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(close(m.pass_at_k[&1], 0.2)); // with one sample pass@1 is strict accuracy
        assert_eq!((m.problems, m.samples, m.correct_samples), (5, 5, 1));
        assert_eq!(m.problems_without_samples, 0);
    }

    #[test]
    fn spec_example_two_samples_per_problem() {
        let (t, f) = (true, false);
        let problems = vec![
            problem("0", "interview", vec![json!([-2]), json!([t, t, t])]),
            problem(
                "1",
                "interview",
                vec![json!([-1, -1, -1]), json!([t, f, t])],
            ),
        ];
        let m = compute(&problems, &[1, 2, 5]);
        assert!(close(m.pass_at_k[&1], 0.25));
        assert!(close(m.pass_at_k[&2], 0.5));
        assert!(!m.pass_at_k.contains_key(&5)); // 5 > n
                                                // One-sample metrics read the first sample only.
        assert_eq!(m.strict_accuracy, 0.0);
        assert_eq!(m.test_case_average, 0.0);
        assert_eq!((m.problems, m.samples, m.correct_samples), (2, 4, 1));
    }

    #[test]
    fn ks_reported_only_up_to_smallest_n() {
        let problems = vec![
            problem("a", "x", vec![json!([true]); 5]),
            problem("b", "x", vec![json!([false]); 3]),
        ];
        let m = compute(&problems, &[0, 1, 3, 4, 100, 3]);
        assert_eq!(m.pass_at_k.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert!(close(m.pass_at_k[&1], 0.5));
        assert!(close(m.pass_at_k[&3], 0.5));
    }

    #[test]
    fn problem_without_samples_counts_as_failed() {
        let problems = vec![
            problem("a", "x", vec![json!([true]), json!([true])]),
            problem("b", "x", vec![]),
        ];
        let m = compute(&problems, &[1, 2]);
        assert_eq!(m.problems_without_samples, 1);
        assert!(close(m.pass_at_k[&1], 0.5));
        assert!(close(m.pass_at_k[&2], 0.5));
        assert!(close(m.strict_accuracy, 0.5));
        assert!(close(m.test_case_average, 0.5));
        // Only empty problems: nothing to estimate pass@k from.
        let m = compute(&problems[1..], &[1]);
        assert!(m.pass_at_k.is_empty());
        assert_eq!(m.strict_accuracy, 0.0);
    }

    #[test]
    fn no_problems() {
        let m = compute(&[], &[1]);
        assert_eq!(m.problems, 0);
        assert!(m.pass_at_k.is_empty());
        assert_eq!((m.strict_accuracy, m.test_case_average), (0.0, 0.0));
    }

    #[test]
    fn per_difficulty_breakdown() {
        let problems = vec![
            problem(
                "0",
                "introductory",
                vec![json!([true, true]), json!([false])],
            ),
            problem("1", "interview", vec![json!([true, false])]),
            problem("2", "interview", vec![json!([true])]),
            problem(
                "3",
                "competition",
                vec![json!([-2]), json!([-2]), json!([true])],
            ),
        ];
        let r = report(&problems, &[1, 2]);
        assert_eq!(r.overall.problems, 4);
        assert_eq!(
            r.overall.pass_at_k.keys().copied().collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            r.by_difficulty
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            vec!["competition", "interview", "introductory"]
        );
        let intro = &r.by_difficulty["introductory"];
        assert!(close(intro.pass_at_k[&1], 0.5));
        assert!(close(intro.pass_at_k[&2], 1.0));
        assert_eq!(intro.strict_accuracy, 1.0);
        let interview = &r.by_difficulty["interview"];
        assert!(close(interview.strict_accuracy, 0.5));
        assert!(close(interview.test_case_average, 0.75));
        let comp = &r.by_difficulty["competition"];
        assert!(close(comp.pass_at_k[&1], 1.0 / 3.0));
        assert!(close(comp.pass_at_k[&2], 2.0 / 3.0));
        assert_eq!(comp.strict_accuracy, 0.0);
        // The overall mean of pass@1 is the problem-weighted mean of the groups.
        assert!(close(
            r.overall.pass_at_k[&1],
            (0.5 + 0.0 + 1.0 + 1.0 / 3.0) / 4.0
        ));
        assert_eq!(by_difficulty(&problems, &[1]).len(), 3);
    }

    #[test]
    fn metrics_serialize() {
        let problems = vec![problem("0", "interview", vec![json!([true])])];
        let v = serde_json::to_value(report(&problems, &[1])).unwrap();
        assert_eq!(v["overall"]["pass_at_k"]["1"], json!(1.0));
        assert_eq!(
            v["by_difficulty"]["interview"]["strict_accuracy"],
            json!(1.0)
        );
    }
}
