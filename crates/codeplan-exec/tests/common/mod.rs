//! Shared helpers for the engine's integration tests: a real interpreter, a real pool.
#![allow(dead_code)]

use std::sync::Arc;

use codeplan_data::{IoTests, Problem, Sample, Source, Tests};
use codeplan_exec::judge::{JudgeKind, JudgeLimits, SampleVerdict};
use codeplan_exec::pool::{Job, JudgeSettings, Pool, PoolConfig};
use codeplan_exec::python::PythonInfo;
use serde_json::Value;

/// A pool over the machine's `python3` (numpy required), all layers required.
pub fn pool(jobs: usize) -> Pool {
    let python =
        PythonInfo::discover(None).expect("python3 with numpy (run .ci/run or scripts/setup.sh)");
    let mut config = PoolConfig::new(python);
    config.jobs = jobs;
    config.require_sandbox = true;
    Pool::new(config).expect("sandboxed worker starts with every layer")
}

/// An APPS-style problem from an `input_output` JSON value.
pub fn io_problem(id: &str, input_output: &Value) -> Problem {
    let inputs = input_output["inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let outputs = input_output["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Problem {
        id: id.to_owned(),
        source: Source::Apps,
        split: None,
        question: String::new(),
        starter_code: String::new(),
        difficulty: None,
        tests: Tests::Io(IoTests {
            fn_name: input_output["fn_name"].as_str().map(str::to_owned),
            inputs,
            outputs,
        }),
        solutions: Vec::new(),
    }
}

/// A stdin/stdout problem with the given (input, expected output) pairs.
pub fn stdio_problem(id: &str, cases: &[(&str, &str)]) -> Problem {
    let io = serde_json::json!({
        "inputs": cases.iter().map(|c| c.0).collect::<Vec<_>>(),
        "outputs": cases.iter().map(|c| c.1).collect::<Vec<_>>(),
    });
    io_problem(id, &io)
}

/// Judges `(problem, code)` pairs and returns verdicts in input order.
pub fn judge(
    pool: &Pool,
    kind: JudgeKind,
    limits: JudgeLimits,
    items: Vec<(Problem, String)>,
) -> Vec<SampleVerdict> {
    let jobs: Vec<Job> = items
        .into_iter()
        .enumerate()
        .map(|(i, (p, code))| Job {
            sample: Sample {
                problem_id: p.id.clone(),
                sample_idx: i,
                code,
            },
            problem: Arc::new(p),
            kind,
            limits: limits.clone(),
        })
        .collect();
    let n = jobs.len();
    let settings = JudgeSettings {
        rerun_timeouts: false,
    };
    let mut out: Vec<Option<SampleVerdict>> = vec![None; n];
    pool.judge_all(jobs, &settings, |v| {
        let i = v.sample_idx;
        out[i] = Some(v);
    });
    out.into_iter()
        .map(|v| v.expect("every job judged"))
        .collect()
}

/// Like [`pool`], with explicit sandbox limits (e.g. a smaller memory cap for memory bombs).
pub fn pool_with_limits(jobs: usize, limits: codeplan_exec::sandbox::SandboxLimits) -> Pool {
    let python =
        PythonInfo::discover(None).expect("python3 with numpy (run .ci/run or scripts/setup.sh)");
    let mut config = PoolConfig::new(python);
    config.jobs = jobs;
    config.limits = limits;
    config.require_sandbox = true;
    Pool::new(config).expect("sandboxed worker starts with every layer")
}

/// An assertion-style problem (HumanEval/MBPP shape): `test` defines `check(candidate)`.
pub fn check_problem(id: &str, test: &str, entry_point: &str) -> Problem {
    Problem {
        id: id.to_owned(),
        source: Source::HumanEval,
        split: None,
        question: String::new(),
        starter_code: String::new(),
        difficulty: None,
        tests: Tests::Check(codeplan_data::CheckTests {
            test: test.to_owned(),
            entry_point: entry_point.to_owned(),
        }),
        solutions: Vec::new(),
    }
}
