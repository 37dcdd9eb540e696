//! Throughput of codeplan's warm sandboxed pool versus the naive evaluator (one fresh
//! `python3` process per test), measured side by side in one run.
//!
//! Run: `cargo bench -p codeplan-exec --bench pool_vs_naive -- [--naive-samples N] [--runs R]`
//! Prints a Markdown block for BENCHMARKS.md. Uses the bundled APPS train problems with every
//! reference solution as a sample.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use codeplan_data::{load_problems, solutions_as_samples, LoadOptions, Problem, Sample, Tests};
use codeplan_exec::compare::apps::compare_stdio;
use codeplan_exec::judge::{JudgeKind, JudgeLimits, SampleVerdict};
use codeplan_exec::pool::{Job, JudgeSettings, Pool, PoolConfig};
use codeplan_exec::python::PythonInfo;
use serde_json::Value;

const PRELUDE: &str = "import sys\nimport time\nimport itertools\nfrom itertools import accumulate, product, permutations, combinations\nimport collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, ChainMap\nfrom functools import lru_cache\nimport math\nfrom math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\nimport fractions\nfrom typing import List, Tuple\nimport numpy as np\nimport random\nimport heapq\nfrom heapq import *\n";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn jobs_for(problems: &HashMap<String, Arc<Problem>>, samples: &[Sample]) -> Vec<Job> {
    samples
        .iter()
        .map(|s| Job {
            problem: problems[&s.problem_id].clone(),
            sample: s.clone(),
            kind: JudgeKind::Apps,
            limits: JudgeLimits::default(),
        })
        .collect()
}

fn run_pool(pool: &Pool, jobs: Vec<Job>) -> (f64, Vec<SampleVerdict>) {
    let start = Instant::now();
    let mut out = Vec::with_capacity(jobs.len());
    pool.judge_all(jobs, &JudgeSettings::default(), |v| out.push(v));
    out.sort_by(|a, b| (&a.problem_id, a.sample_idx).cmp(&(&b.problem_id, b.sample_idx)));
    (start.elapsed().as_secs_f64(), out)
}

fn test_count(problems: &HashMap<String, Arc<Problem>>, samples: &[Sample]) -> usize {
    samples
        .iter()
        .map(|s| problems[&s.problem_id].test_count())
        .sum()
}

fn text(v: &Value) -> String {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The naive evaluator: for every test, a fresh interpreter runs prelude + program with the
/// test input on stdin; the output goes through the same comparison cascade.
fn run_naive(
    python: &str,
    problems: &HashMap<String, Arc<Problem>>,
    samples: &[Sample],
    jobs: usize,
) -> (f64, usize, usize) {
    let work: Vec<(String, String, String)> = samples
        .iter()
        .flat_map(|s| {
            let Tests::Io(io) = &problems[&s.problem_id].tests else {
                unreachable!()
            };
            let program = format!("{PRELUDE}{}", s.code);
            io.inputs
                .iter()
                .zip(&io.outputs)
                .map(move |(i, o)| (program.clone(), text(i), text(o)))
                .collect::<Vec<_>>()
        })
        .collect();
    let n = work.len();
    let queue = Mutex::new(work.into_iter());
    let passed = Mutex::new(0usize);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let Some((program, input, expected)) = queue.lock().unwrap().next() else {
                    break;
                };
                let mut child = Command::new(python)
                    .args(["-c", &program])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("python3 starts");
                let mut stdin = child.stdin.take().unwrap();
                let _ = stdin.write_all(input.as_bytes());
                drop(stdin);
                let out = child.wait_with_output().expect("python3 ends");
                if out.status.success()
                    && compare_stdio(&String::from_utf8_lossy(&out.stdout), &expected).is_some()
                {
                    *passed.lock().unwrap() += 1;
                }
            });
        }
    });
    (
        start.elapsed().as_secs_f64(),
        n,
        passed.into_inner().unwrap(),
    )
}

fn main() {
    let runs = arg("--runs", 3);
    let naive_samples = arg("--naive-samples", 120);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/apps/train.jsonl");
    let problems = load_problems(data.as_ref(), &LoadOptions::default())
        .expect("bundled APPS")
        .problems;
    let samples = solutions_as_samples(&problems, None);
    let by_id: HashMap<String, Arc<Problem>> = problems
        .iter()
        .map(|p| (p.id.clone(), Arc::new(p.clone())))
        .collect();
    let python = PythonInfo::discover(None).expect("python3 with numpy");
    let exe = python.executable.display().to_string();
    let config = PoolConfig::new(python);
    let jobs = config.jobs;
    let pool = Pool::new(config).expect("pool");
    let tests = test_count(&by_id, &samples);
    eprintln!(
        "{} samples, {} tests, {} workers",
        samples.len(),
        tests,
        jobs
    );

    // 1. The whole set, `runs` times: throughput and verdict stability.
    let mut first: Option<Vec<SampleVerdict>> = None;
    let mut identical = true;
    let mut rates = Vec::new();
    for r in 0..runs {
        let (secs, verdicts) = run_pool(&pool, jobs_for(&by_id, &samples));
        let passed = verdicts.iter().filter(|v| v.passed).count();
        eprintln!(
            "pool run {}: {:.1} s, {:.0} tests/s, {passed}/{} samples pass",
            r + 1,
            secs,
            tests as f64 / secs,
            verdicts.len()
        );
        rates.push(tests as f64 / secs);
        let key: Vec<_> = verdicts
            .iter()
            .map(|v| (v.problem_id.clone(), v.sample_idx, v.apps_result.clone()))
            .collect();
        if let Some(f) = &first {
            let fk: Vec<_> = f
                .iter()
                .map(|v| (v.problem_id.clone(), v.sample_idx, v.apps_result.clone()))
                .collect();
            identical &= fk == key;
        } else {
            first = Some(verdicts);
        }
    }

    // 2. Side by side on the same standard-input subset: pool vs one fresh python3 per test.
    let subset: Vec<Sample> = samples
        .iter()
        .filter(|s| matches!(&by_id[&s.problem_id].tests, Tests::Io(io) if io.fn_name.is_none()))
        .step_by((samples.len() / naive_samples.max(1)).max(1))
        .take(naive_samples)
        .cloned()
        .collect();
    let sub_tests = test_count(&by_id, &subset);
    let (pool_secs, _) = run_pool(&pool, jobs_for(&by_id, &subset));
    let (naive_secs, naive_n, naive_passed) = run_naive(&exe, &by_id, &subset, jobs);
    assert_eq!(naive_n, sub_tests);
    let pool_rate = sub_tests as f64 / pool_secs;
    let naive_rate = sub_tests as f64 / naive_secs;
    eprintln!("subset: {} samples, {sub_tests} tests; pool {pool_secs:.2} s, naive {naive_secs:.2} s ({naive_passed} tests passed)", subset.len());

    // 3. Per-test overhead: one worker, a trivial program, many tests.
    let echo_tests = 100;
    let inputs: Vec<Value> = (0..echo_tests)
        .map(|i| Value::String(format!("{i}\n")))
        .collect();
    let echo = Problem {
        id: "echo".into(),
        source: codeplan_data::Source::Apps,
        split: None,
        question: String::new(),
        starter_code: String::new(),
        difficulty: None,
        tests: Tests::Io(codeplan_data::IoTests {
            fn_name: None,
            inputs: inputs.clone(),
            outputs: inputs,
        }),
        solutions: vec![],
    };
    let echo_map: HashMap<String, Arc<Problem>> = [("echo".to_owned(), Arc::new(echo))].into();
    let echo_samples: Vec<Sample> = (0..20)
        .map(|i| Sample {
            problem_id: "echo".into(),
            sample_idx: i,
            code: format!("print(input())  # {i}"),
        })
        .collect();
    let mut one = PoolConfig::new(PythonInfo::discover(None).unwrap());
    one.jobs = 1;
    let one = Pool::new(one).unwrap();
    let (echo_secs, echo_v) = run_pool(&one, jobs_for(&echo_map, &echo_samples));
    assert!(echo_v.iter().all(|v| v.passed));
    let per_test_ms = echo_secs * 1000.0 / (echo_tests * echo_samples.len()) as f64;
    let (naive_echo_secs, _, _) = run_naive(&exe, &echo_map, &echo_samples[..2], 1);
    let naive_per_test_ms = naive_echo_secs * 1000.0 / (echo_tests * 2) as f64;

    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    println!("| measure | codeplan pool | naive (fresh python3 per test) | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| tests/s, same {sub_tests}-test subset ({} samples) | {pool_rate:.0} | {naive_rate:.1} | **{:.1}×** |", subset.len(), pool_rate / naive_rate);
    println!("| per-test time, trivial program, 1 worker | {per_test_ms:.2} ms | {naive_per_test_ms:.1} ms | {:.1}× |", naive_per_test_ms / per_test_ms);
    println!(
        "| tests/s, all {} solutions ({tests} tests), {runs} runs | {} (mean {mean:.0}) | – | – |",
        samples.len(),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| verdicts identical across the {runs} runs | {} | – | – |",
        if identical { "yes" } else { "**NO**" }
    );
}
