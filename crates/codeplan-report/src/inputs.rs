//! Reading what the other stages wrote: verdicts, samples, training metrics, distill summaries
//! and plans. Each reader names the file (and line) of anything it cannot use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use codeplan_data::{read_samples, Problem, SampleOptions};
use codeplan_exec::judge::SampleVerdict;

use crate::error::ReportError;
use crate::report::PlanStats;
use codeplan_teacher::summary::Summary;

/// The most loss points kept per variant: a report is read by people, and report.json should stay small.
const MAX_LOSS_POINTS: usize = 2000;

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))
}

/// Non-blank lines with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Every verdict of a `verdicts.jsonl` written by `codeplan eval`, with its line number.
///
/// Unlike eval's resume (which quietly drops a torn line and judges the sample again), a
/// finished run's file must be whole: any unreadable line is an error naming file and line, and
/// so is a (problem, sample) judged twice, which would count one sample double.
pub(crate) fn read_verdicts(path: &Path) -> Result<Vec<(usize, SampleVerdict)>, ReportError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut seen: HashMap<(String, usize), usize> = HashMap::new();
    for (no, line) in lines(&text) {
        let v: codeplan_exec::eval::VerdictLine = serde_json::from_str(line)
            .map_err(|e| ReportError::line(path, no, format!("not a verdict line: {e}")))?;
        let v = v.verdict;
        if let Some(first) = seen.insert((v.problem_id.clone(), v.sample_idx), no) {
            return Err(ReportError::line(
                path,
                no,
                format!(
                    "problem {} sample {} was already judged on line {first}",
                    v.problem_id, v.sample_idx
                ),
            ));
        }
        out.push((no, v));
    }
    if out.is_empty() {
        return Err(ReportError::file(path, "no verdicts (empty file)"));
    }
    Ok(out)
}

/// The code of the wanted (problem, sample index) pairs of a samples file.
///
/// Read with codeplan-data's reader, so human-eval style `{"task_id", "completion"}` lines get
/// the same program `codeplan eval` judged.
pub(crate) fn read_codes(
    path: &Path,
    problems: &[Problem],
    wanted: &[(String, usize)],
) -> Result<HashMap<(String, usize), String>, ReportError> {
    let loaded = read_samples(path, problems, &SampleOptions::default())?;
    let wanted: std::collections::HashSet<&(String, usize)> = wanted.iter().collect();
    Ok(loaded
        .samples
        .into_iter()
        .map(|s| ((s.problem_id, s.sample_idx), s.code))
        .filter(|k| wanted.contains(&k.0))
        .collect())
}

/// The `train/loss` curve of a `metrics.jsonl` written by `codeplan train`, by step.
///
/// Follows codeplan-train's own reader: lines that are not objects with a `step` are skipped
/// (a crash can tear the last line), and the last record of a step wins (a resumed run logs
/// the steps after its checkpoint again).
pub(crate) fn read_loss(path: &Path) -> Result<Vec<(u64, f64)>, ReportError> {
    let text = read_text(path)?;
    let mut points: BTreeMap<u64, f64> = BTreeMap::new();
    for (_, line) in lines(&text) {
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(step), Some(loss)) = (
            record.get("step").and_then(Value::as_u64),
            record.get("train/loss").and_then(Value::as_f64),
        ) else {
            continue;
        };
        if loss.is_finite() {
            points.insert(step, loss);
        }
    }
    let all: Vec<(u64, f64)> = points.into_iter().collect();
    Ok(thin(all, MAX_LOSS_POINTS))
}

/// Keeps every `stride`-th point and always the last, so at most about `max` remain.
fn thin(points: Vec<(u64, f64)>, max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max {
        return points;
    }
    let stride = points.len().div_ceil(max);
    let last = *points.last().expect("non-empty");
    let mut out: Vec<(u64, f64)> = points.into_iter().step_by(stride).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// Plan statistics from a `summary.json` written by `codeplan distill`, read with the teacher's
/// own `Summary` type (so a file that is not one is an error, never zeros).
///
/// The validation pass rate is recomputed from the per-difficulty counts (passed / judged)
/// rather than copied, so it is the same figure however the summary rounds.
pub(crate) fn read_plan_stats(path: &Path) -> Result<PlanStats, ReportError> {
    let text = read_text(path)?;
    let summary: Summary = serde_json::from_str(&text)
        .map_err(|e| ReportError::file(path, format!("not a distill summary: {e}")))?;
    let judged: usize = summary.per_difficulty.values().map(|d| d.judged).sum();
    let passed: usize = summary.per_difficulty.values().map(|d| d.passed).sum();
    Ok(PlanStats {
        source: path.display().to_string(),
        reasoning: Some(summary.reasoning),
        teacher: Some(summary.teacher.model),
        problems: Some(summary.problems),
        problems_with_plans: Some(summary.problems_with_plans),
        candidates: Some(summary.candidates),
        plans_kept: Some(summary.plans_kept),
        plans_validated: Some(summary.plans_validated),
        plans_per_problem: summary.plans_per_problem,
        judged,
        passed,
        validation_pass_rate: (judged > 0).then(|| passed as f64 / judged as f64),
        per_difficulty: summary.per_difficulty,
    })
}

/// One plan of a plans file: its problem, its text, and where it is.
pub(crate) struct PlanText {
    /// The problem the plan is for.
    pub problem_id: String,
    /// The plan.
    pub plan: String,
    /// 1-based line number.
    pub line: usize,
}

/// The plans of a `plans.jsonl` written by `codeplan distill` (fields `problem_id`, `plan`).
pub(crate) fn read_plans(path: &Path) -> Result<Vec<PlanText>, ReportError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (no, line) in lines(&text) {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| ReportError::line(path, no, format!("not JSON: {e}")))?;
        let plan = v
            .get("plan")
            .and_then(Value::as_str)
            .ok_or_else(|| ReportError::line(path, no, "missing string field \"plan\""))?;
        let problem_id = match v.get("problem_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::from("?"),
        };
        out.push(PlanText {
            problem_id,
            plan: plan.to_owned(),
            line: no,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_last_point() {
        let pts: Vec<(u64, f64)> = (0..10).map(|i| (i, i as f64)).collect();
        let t = thin(pts.clone(), 3);
        assert_eq!(t.first(), Some(&(0, 0.0)));
        assert_eq!(t.last(), Some(&(9, 9.0)));
        assert!(t.len() <= 5);
        assert_eq!(thin(pts.clone(), 100), pts);
    }
}
