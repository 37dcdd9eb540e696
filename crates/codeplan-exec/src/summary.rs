//! The evaluation summary: metrics per difficulty, verdict counts, timeouts, environment,
//! and its Markdown rendering.

use std::collections::{BTreeMap, HashMap};

use codeplan_data::{only_unrated, UNRATED};
use serde::{Deserialize, Serialize};

use crate::eval::{Calibration, Environment, EvalOptions, JudgeChoice, VerdictLine};
use crate::judge::{JudgeLimits, SampleStatus, SampleVerdict};
use crate::metrics::{self, ProblemScores, Report};

/// Timeout bookkeeping: how much a score could depend on machine load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeoutReport {
    /// Samples with at least one timeout.
    pub samples_timed_out: usize,
    /// Of those, how many were re-run at twice the limits.
    pub rerun: usize,
    /// Re-runs whose pass/fail verdict differed (the score depends on machine speed there).
    pub flips: usize,
}

/// The summary written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `apps`, `strict` or `auto`.
    pub judge: JudgeChoice,
    /// Problems with at least one sample.
    pub problems: usize,
    /// Samples in the input.
    pub samples: usize,
    /// Samples judged in this run.
    pub judged_now: usize,
    /// Samples whose verdict was reused from an earlier run with the same settings.
    pub reused: usize,
    /// Samples whose code repeated an earlier sample of the same problem (judged once).
    pub duplicates: usize,
    /// pass@k, strict accuracy and test-case average, overall and per difficulty.
    pub metrics: Report,
    /// Samples per overall status.
    pub sample_status: BTreeMap<String, usize>,
    /// Tests per status.
    pub test_status: BTreeMap<String, usize>,
    /// Samples the engine failed on twice (excluded from the metrics, never counted as failures).
    pub internal_errors: usize,
    /// Timeouts and flips.
    pub timeouts: TimeoutReport,
    /// Default limits.
    pub limits: JudgeLimits,
    /// Calibration, when used.
    pub calibration: Option<Calibration>,
    /// Interpreter and sandbox.
    pub environment: Environment,
    /// Wall time of this run, seconds.
    pub wall_s: f64,
}

/// What a summary takes from the run(s) that produced the verdicts, rather than from the
/// verdicts themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunCounts {
    /// Samples whose verdict was reused from an earlier run.
    pub reused: usize,
    /// Samples judged now.
    pub judged_now: usize,
    /// Samples whose code repeated an earlier sample of the same problem.
    pub duplicates: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
}

impl Summary {
    /// Summarises verdicts (in any order): metrics overall and per difficulty (`difficulty`
    /// maps problem ids to labels; ids it lacks count as `all`), verdict counts and timeouts.
    /// `codeplan eval` and `codeplan merge` both summarise through this, so a merged summary
    /// is computed exactly as an unsharded run's.
    pub fn from_verdicts(
        difficulty: &HashMap<String, String>,
        all: &[VerdictLine],
        options: &EvalOptions,
        environment: Environment,
        counts: RunCounts,
    ) -> Summary {
        let mut per_problem: BTreeMap<&str, Vec<&SampleVerdict>> = BTreeMap::new();
        let mut sample_status = BTreeMap::new();
        let mut test_status = BTreeMap::new();
        let mut timeouts = TimeoutReport::default();
        let mut internal_errors = 0;
        for line in all {
            let v = &line.verdict;
            *sample_status.entry(name(&v.status)).or_insert(0) += 1;
            for t in &v.tests {
                *test_status.entry(name(&t.status)).or_insert(0) += 1;
            }
            if v.timed_out() {
                timeouts.samples_timed_out += 1;
            }
            if let Some(again) = v.rerun_passed {
                timeouts.rerun += 1;
                timeouts.flips += usize::from(again != v.passed);
            }
            if v.status == SampleStatus::InternalError {
                internal_errors += 1;
                continue;
            }
            per_problem.entry(&v.problem_id).or_default().push(v);
        }
        let scores: Vec<ProblemScores> = per_problem
            .into_iter()
            .map(|(id, mut vs)| {
                vs.sort_by_key(|v| v.sample_idx);
                ProblemScores {
                    problem_id: id.to_owned(),
                    difficulty: difficulty
                        .get(id)
                        .map_or(UNRATED, String::as_str)
                        .to_owned(),
                    samples: vs.iter().map(|v| v.score()).collect(),
                }
            })
            .collect();
        Summary {
            judge: options.judge,
            problems: scores.len(),
            samples: all.len(),
            judged_now: counts.judged_now,
            reused: counts.reused,
            duplicates: counts.duplicates,
            metrics: metrics::report(&scores, &options.ks),
            sample_status,
            test_status,
            internal_errors,
            timeouts,
            limits: options.limits.clone(),
            calibration: options.calibrate,
            environment,
            wall_s: counts.wall_s,
        }
    }
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Summary {
    /// The summary as a Markdown report (also what the CLI prints).
    pub fn to_markdown(&self) -> String {
        let ks: Vec<usize> = self.metrics.overall.pass_at_k.keys().copied().collect();
        let mut s = String::new();
        s.push_str(&format!(
            "# codeplan eval ({} judge)\n\n{} problems, {} samples ({} judged now, {} reused, {} duplicate code)\n\n",
            name(&self.judge), self.problems, self.samples, self.judged_now, self.reused, self.duplicates
        ));
        s.push_str("| difficulty | problems | samples |");
        for k in &ks {
            s.push_str(&format!(" pass@{k} |"));
        }
        s.push_str(" strict acc | test avg |\n|---|---:|---:|");
        for _ in &ks {
            s.push_str("---:|");
        }
        s.push_str("---:|---:|\n");
        let by = &self.metrics.by_difficulty;
        let mut rows: Vec<(&str, &metrics::Metrics)> =
            if only_unrated(by.keys().map(String::as_str)) {
                Vec::new()
            } else {
                by.iter().map(|(d, m)| (d.as_str(), m)).collect()
            };
        rows.push(("**overall**", &self.metrics.overall));
        for (d, m) in rows {
            s.push_str(&format!("| {d} | {} | {} |", m.problems, m.samples));
            for k in &ks {
                match m.pass_at_k.get(k) {
                    Some(v) => s.push_str(&format!(" {:.4} |", v)),
                    None => s.push_str(" – |"),
                }
            }
            s.push_str(&format!(
                " {:.4} | {:.4} |\n",
                m.strict_accuracy, m.test_case_average
            ));
        }
        s.push_str("\n**Samples:** ");
        s.push_str(&join_counts(&self.sample_status));
        s.push_str("  \n**Tests:** ");
        s.push_str(&join_counts(&self.test_status));
        s.push_str(&format!(
            "  \n**Timeouts:** {} samples timed out; {} re-run at 2× the limit, {} flipped  \n",
            self.timeouts.samples_timed_out, self.timeouts.rerun, self.timeouts.flips
        ));
        if self.internal_errors > 0 {
            s.push_str(&format!(
                "**Internal errors:** {} samples could not be judged (engine failure, excluded from the metrics)  \n",
                self.internal_errors
            ));
        }
        let e = &self.environment;
        s.push_str(&format!(
            "\n**Environment:** Python {} ({}), numpy {}, int digit limit {}, {} workers; limits: {} s per test{}, memory {} MiB  \n",
            e.python,
            e.python_executable,
            e.numpy,
            e.int_max_str_digits,
            e.jobs,
            self.limits.test_timeout_s,
            if self.calibration.is_some() { " (calibrated per problem)" } else { "" },
            e.sandbox_limits.memory_bytes >> 20
        ));
        if e.sandbox_missing.is_empty() {
            s.push_str("**Sandbox:** all layers in force (user/pid/net/mount/ipc/uts namespaces, read-only root, private /tmp, Landlock, seccomp, rlimits, pids and memory cgroups)\n");
        } else {
            s.push_str(&format!(
                "**Sandbox: missing layers:** {}\n",
                e.sandbox_missing.join(", ")
            ));
        }
        s
    }
}

fn join_counts(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
