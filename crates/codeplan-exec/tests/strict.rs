//! The strict judge on real programs: real `__main__` scripts, byte stdin/stdout, CPU limits,
//! the wall-clock backstop, call-based and assertion-style tests, and the bundled benchmarks'
//! canonical solutions.

mod common;

use std::sync::Arc;

use codeplan_data::{load_problems, solutions_as_samples, LoadOptions, Problem};
use codeplan_exec::judge::{JudgeKind, JudgeLimits, SampleStatus, TestStatus};
use codeplan_exec::pool::{Job, JudgeSettings};
use serde_json::json;

fn bundled(path: &str) -> Vec<Problem> {
    let p = format!("{}/../../data/{path}", env!("CARGO_MANIFEST_DIR"));
    load_problems(p.as_ref(), &LoadOptions::default())
        .unwrap()
        .problems
}

fn fast() -> JudgeLimits {
    JudgeLimits {
        test_timeout_s: 1.0,
        ..JudgeLimits::default()
    }
}

#[test]
fn stdio_programs_run_as_main_with_token_comparison() {
    let pool = common::pool(2);
    let p = common::stdio_problem("sum", &[("1 2\n", "3\n"), ("0.1 0.2\n", "0.3\n")]);
    let cases = [
        // A real __main__ script reading bytes from stdin: accepted.
        "import sys\nif __name__ == '__main__':\n    a, b = map(float, sys.stdin.buffer.read().split())\n    s = a + b\n    print(int(s) if s == int(s) else s)\n",
        // Wrong on the first test.
        "a, b = map(float, input().split())\nprint(a - b)\n",
        // exit() works in a real script (it is None under the APPS guard).
        "a, b = map(float, input().split())\ns = a + b\nprint(int(s) if s == int(s) else round(s, 9))\nexit(0)\n",
        // Does not compile.
        "def f(:\n",
        // Raises after printing.
        "print(3)\nraise ValueError('boom')\n",
    ];
    let v = common::judge(
        &pool,
        JudgeKind::Strict,
        fast(),
        cases.iter().map(|c| (p.clone(), c.to_string())).collect(),
    );
    assert!(v[0].passed, "{:?}", v[0]);
    assert_eq!(v[1].tests[0].status, TestStatus::WrongAnswer);
    assert!(v[2].passed, "{:?}", v[2]);
    assert_eq!(v[3].status, SampleStatus::CompileError);
    assert!(
        v[3].stderr_tail.contains("SyntaxError"),
        "{}",
        v[3].stderr_tail
    );
    assert_eq!(v[4].tests[0].status, TestStatus::RuntimeError);
    assert!(v[4].tests[0]
        .stderr_tail
        .as_deref()
        .unwrap_or("")
        .contains("boom"));
}

#[test]
fn cpu_limit_and_wall_backstop_are_timeouts_and_later_tests_still_run() {
    let pool = common::pool(1);
    let p = common::stdio_problem("t", &[("1\n", "1\n"), ("2\n", "2\n"), ("3\n", "3\n")]);
    let spin = "n = int(input())\nif n == 2:\n    while True:\n        pass\nprint(n)\n";
    let sleep = "import time\nn = int(input())\nif n == 2:\n    time.sleep(3600)\nprint(n)\n";
    let v = common::judge(
        &pool,
        JudgeKind::Strict,
        fast(),
        vec![(p.clone(), spin.into()), (p.clone(), sleep.into())],
    );
    for verdict in &v {
        let st: Vec<TestStatus> = verdict.tests.iter().map(|t| t.status).collect();
        assert_eq!(
            st,
            [TestStatus::Pass, TestStatus::Timeout, TestStatus::Pass],
            "{verdict:?}"
        );
        assert!(!verdict.passed);
    }
}

#[test]
fn call_based_tests_compare_return_values_strictly() {
    let pool = common::pool(1);
    let io = json!({"fn_name": "f", "inputs": [[1, 2], [0.1, 0.2]], "outputs": [[3], [0.3]]});
    let p = common::io_problem("call", &io);
    let v = common::judge(
        &pool,
        JudgeKind::Strict,
        fast(),
        vec![
            (p.clone(), "def f(a, b):\n    return a + b\n".into()),
            (p.clone(), "def f(a, b):\n    return a - b\n".into()),
            (
                p.clone(),
                "class Solution:\n    def f(self, a, b):\n        return a + b\n".into(),
            ),
            (p.clone(), "def f(a, b):\n    return True\n".into()),
        ],
    );
    assert!(v[0].passed, "{:?}", v[0]);
    assert!(!v[1].passed);
    assert!(v[2].passed, "{:?}", v[2]);
    assert!(
        !v[3].passed,
        "a bool is not accepted where a number is expected"
    );
}

#[test]
fn humaneval_canonical_solutions_all_pass_and_early_exit_is_not_a_pass() {
    let pool = common::pool(2);
    let problems = bundled("humaneval/HumanEval.jsonl.gz");
    let mut items: Vec<(Problem, String)> = solutions_as_samples(&problems, Some(1))
        .into_iter()
        .map(|s| {
            (
                problems
                    .iter()
                    .find(|p| p.id == s.problem_id)
                    .unwrap()
                    .clone(),
                s.code,
            )
        })
        .collect();
    // A program that exits successfully before the checks run must not pass.
    let p0 = problems[0].clone();
    items.push((
        p0.clone(),
        format!("{}\nimport os\nos._exit(0)\n", p0.starter_code),
    ));
    items.push((p0.clone(), format!("{}    return 42\n", p0.starter_code)));
    let v = common::judge(&pool, JudgeKind::Strict, JudgeLimits::default(), items);
    let failing: Vec<_> = v[..164]
        .iter()
        .filter(|v| !v.passed)
        .map(|v| &v.problem_id)
        .collect();
    assert!(
        failing.is_empty(),
        "canonical solutions failing: {failing:?}"
    );
    assert!(!v[164].passed, "os._exit(0) before check() passed");
    assert_eq!(v[165].tests[0].status, TestStatus::WrongAnswer);
}

#[test]
fn mbpp_reindented_solutions_pass() {
    let pool = common::pool(2);
    let problems = bundled("mbpp/mbpp_sanitized.jsonl");
    // This checks correctness, not speed: MbppEval/123's reference (amicable numbers below
    // 10,000) takes 3.1-4.1 s of CPU here, so the default 4 s limit made it flaky on a busy CI.
    let limits = JudgeLimits {
        test_timeout_s: 30.0,
        sample_timeout_s: 60.0,
        ..JudgeLimits::default()
    };
    let jobs: Vec<Job> = solutions_as_samples(&problems, Some(1))
        .into_iter()
        .map(|s| Job {
            problem: Arc::new(
                problems
                    .iter()
                    .find(|p| p.id == s.problem_id)
                    .unwrap()
                    .clone(),
            ),
            sample: s,
            kind: JudgeKind::Strict,
            limits: limits.clone(),
        })
        .collect();
    let mut passed = 0;
    let mut failing = Vec::new();
    pool.judge_all(jobs, &JudgeSettings::default(), |v| {
        passed += usize::from(v.passed);
        if !v.passed {
            let statuses: Vec<_> = v.tests.iter().map(|t| format!("{:?}", t.status)).collect();
            failing.push(format!("{} {statuses:?}", v.problem_id));
        }
    });
    // 416/427: ten tests use math.isclose without importing math; one solution defines its
    // own `check` (see data/README.md).
    assert_eq!(passed, 416, "failing: {failing:#?}");
}

#[test]
fn apps_judge_refuses_assertion_style_problems() {
    let problems = bundled("humaneval/HumanEval.jsonl.gz");
    let err = codeplan_exec::judge::check_judgeable(JudgeKind::Apps, &problems[0]).unwrap_err();
    assert!(err.contains("--judge strict"), "{err}");
}
