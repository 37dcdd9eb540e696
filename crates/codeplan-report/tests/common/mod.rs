//! Fixtures in the exact formats codeplan writes: verdict lines built from codeplan-exec's own
//! types, samples lines shaped like `codeplan generate`'s, metrics and distill summaries with
//! the writers' field names.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::json;

use codeplan_data::{IoTests, Problem, Source, Tests};
use codeplan_exec::eval::VerdictLine;
use codeplan_exec::judge::{JudgeKind, SampleStatus, SampleVerdict, TestStatus, TestVerdict};
use codeplan_report::{ReportInput, VariantInput};
use codeplan_teacher::ask::AskStats;
use codeplan_teacher::distill::TeacherInfo;
use codeplan_teacher::request::Usage;
use codeplan_teacher::summary::{Cost, DifficultyStats, Summary};

/// An APPS-like problem.
pub fn problem(id: &str, difficulty: Option<&str>, question: &str) -> Problem {
    Problem {
        id: id.into(),
        source: if difficulty.is_some() {
            Source::Apps
        } else {
            Source::HumanEval
        },
        split: None,
        question: question.into(),
        starter_code: String::new(),
        difficulty: difficulty.map(str::to_owned),
        tests: Tests::Io(IoTests {
            fn_name: None,
            inputs: vec![json!("1\n")],
            outputs: vec![json!("1\n")],
        }),
        solutions: vec!["print(1)".into()],
    }
}

/// One sample's outcome in a fixture.
#[derive(Clone, Copy, Debug)]
pub enum O {
    /// Passed.
    P,
    /// Wrong answer.
    F,
    /// The engine failed on it.
    E,
}

/// A verdict line as `codeplan eval` writes it.
pub fn verdict(problem_id: &str, sample_idx: usize, o: O) -> VerdictLine {
    let (passed, status, test) = match o {
        O::P => (true, SampleStatus::Passed, TestStatus::Pass),
        O::F => (false, SampleStatus::Failed, TestStatus::WrongAnswer),
        O::E => (false, SampleStatus::InternalError, TestStatus::NotRun),
    };
    VerdictLine {
        settings_key: "0123456789abcdef".into(),
        verdict: SampleVerdict {
            problem_id: problem_id.into(),
            sample_idx,
            code_sha256: format!("{problem_id}-{sample_idx}"),
            judge: JudgeKind::Apps,
            passed,
            status,
            apps_result: (!matches!(o, O::E)).then(|| vec![json!(passed)]),
            no_result_cause: None,
            tests: vec![TestVerdict::without_run(test)],
            stderr_tail: String::new(),
            wall_s: 0.01,
            attempts: if matches!(o, O::E) { 2 } else { 1 },
            internal_error: matches!(o, O::E).then(|| "worker died".to_owned()),
            rerun_passed: None,
        },
    }
}

/// The code of a fixture sample (recognisable in reports).
pub fn code(variant: &str, problem_id: &str, idx: usize) -> String {
    format!("# {variant} {problem_id} {idx}\nprint({idx})\n")
}

/// Writes a variant's samples and verdicts (`outcomes[i]` = problem id and its samples' outcomes).
pub fn variant(
    dir: &Path,
    name: &str,
    baseline: bool,
    outcomes: &[(&str, Vec<O>)],
) -> VariantInput {
    let vdir = dir.join(name);
    std::fs::create_dir_all(&vdir).unwrap();
    let (mut samples, mut verdicts) = (String::new(), String::new());
    for (pid, os) in outcomes {
        for (i, o) in os.iter().enumerate() {
            // The fields `codeplan generate` writes (codeplan-model's SampleRecord).
            let line = json!({
                "problem_id": pid, "sample_idx": i, "code": code(name, pid, i),
                "completion": code(name, pid, i), "finish_reason": "stop",
                "completion_tokens": 12, "prompt_tokens": 80, "prompt_truncated": false, "seed": i,
            });
            samples.push_str(&format!("{line}\n"));
            verdicts.push_str(&serde_json::to_string(&verdict(pid, i, *o)).unwrap());
            verdicts.push('\n');
        }
    }
    std::fs::write(vdir.join("samples.jsonl"), samples).unwrap();
    std::fs::write(vdir.join("verdicts.jsonl"), verdicts).unwrap();
    VariantInput {
        name: name.into(),
        description: format!("{name} variant"),
        baseline,
        samples: vdir.join("samples.jsonl"),
        verdicts: vdir.join("verdicts.jsonl"),
        train_metrics: None,
        plans_summary: None,
    }
}

/// `n` samples of which the first `c` pass.
pub fn passes(c: usize, n: usize) -> Vec<O> {
    (0..n).map(|i| if i < c { O::P } else { O::F }).collect()
}

/// A training metrics log as `codeplan train` writes it.
pub fn metrics(dir: &Path, name: &str, losses: &[f64]) -> PathBuf {
    let p = dir.join(format!("{name}-metrics.jsonl"));
    let text: String = losses
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "{}\n",
                json!({"step": i + 1, "train/loss": l, "train/lr": 1e-4, "tokens_per_s": 100.0})
            )
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// A distill summary.json written from codeplan-teacher's own `Summary` type.
pub fn plans_summary(dir: &Path) -> PathBuf {
    let stats = |problems, with_plans, candidates, judged, passed| DifficultyStats {
        problems,
        problems_with_plans: with_plans,
        candidates,
        judged,
        passed,
        pass_rate: Some(passed as f64 / judged as f64),
    };
    let summary = Summary {
        teacher: TeacherInfo {
            model: "teacher-7b".into(),
            identity: "local".into(),
        },
        reasoning: "backward".into(),
        template_hash: "abcdef0123456789".into(),
        problems: 4,
        problems_without_solution: 0,
        candidates: 8,
        plan_requests: 8,
        problems_with_plans: 3,
        plans_kept: 6,
        plans_validated: 5,
        plans_per_problem: Some((2.0, 1, 3)),
        outcomes: [("kept".to_owned(), 5), ("failed_validation".to_owned(), 3)].into(),
        per_difficulty: [
            ("interview".to_owned(), stats(2, 2, 4, 4, 3)),
            ("introductory".to_owned(), stats(2, 1, 4, 4, 2)),
        ]
        .into(),
        plan_stage: AskStats::default(),
        code_stage: AskStats::default(),
        tokens: Usage::default(),
        cost: Cost {
            price: None,
            spent_this_run: None,
            answers_value: None,
        },
        stopped: None,
        incomplete_problems: Vec::new(),
        unmatched_imports: 0,
    };
    let p = dir.join("distill-summary.json");
    std::fs::write(&p, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    p
}

/// A report input with fast bootstrap settings.
pub fn input(eval: Vec<Problem>, variants: Vec<VariantInput>) -> ReportInput {
    let mut i = ReportInput::new("test experiment", eval);
    i.variants = variants;
    i.bootstrap.resamples = 2000;
    i
}
