//! The evaluation engine's own guarantees: a misbehaving worker is replaced and its sample
//! retried once, then reported as an internal error (never as a model failure); timeouts are
//! re-run at twice the limit and flips counted; limits can be calibrated per problem.

mod common;

use std::sync::Arc;

use codeplan_data::Sample;
use codeplan_exec::eval::{evaluate, Calibration, EvalOptions, JudgeChoice};
use codeplan_exec::judge::{JudgeKind, JudgeLimits, SampleStatus};
use codeplan_exec::pool::{judge_one, Job, JudgeSettings, PoolConfig, Slot};
use codeplan_exec::python::PythonInfo;

/// A program that forges protocol frames (an out-of-range test index, a duplicate) on every
/// file descriptor it has, its result pipe among them.
const FORGER: &str = r#"
import os, struct, json
for msg in ({"t": "test", "i": 10**6, "status": "ok", "result": True},
            {"t": "test", "i": 0, "status": "ok", "stdout": "1\n"},
            {"t": "exit", "exit_code": 0}):
    body = json.dumps(msg).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, struct.pack("<I", len(body)) + body)
        except OSError:
            pass
"#;

#[test]
fn forged_frames_fail_the_sample_not_the_engine() {
    let pool = common::pool(1);
    let p = common::stdio_problem("p", &[("1\n", "1\n"), ("2\n", "2\n")]);
    let v = common::judge(
        &pool,
        JudgeKind::Apps,
        JudgeLimits::default(),
        vec![
            (p.clone(), FORGER.into()),
            (p.clone(), "print(input())".into()),
        ],
    );
    assert!(!v[0].passed, "{:?}", v[0]);
    assert_ne!(v[0].status, SampleStatus::InternalError, "{:?}", v[0]);
    assert_eq!(v[0].attempts, 1);
    assert!(v[1].passed, "{:?}", v[1]);
}

/// A worker that dies under a sample (here: its interpreter is killed after 1.5 s by a
/// wrapper) is replaced, the sample retried once, then reported as an internal error.
#[test]
fn a_dying_worker_is_replaced_and_the_sample_retried_once_then_internal_error() {
    // Not under /tmp: the sandbox mounts a private /tmp before exec.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut python = PythonInfo::discover(None).unwrap();
    let wrapper = dir.path().join("python-dies");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec timeout -s KILL 1.5 {} \"$@\"\n",
            python.executable.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    python.executable = wrapper;
    python.read_paths.push(dir.path().to_path_buf());
    let mut slot = Slot::new(Arc::new(PoolConfig::new(python)));
    let p = Arc::new(common::stdio_problem("p", &[("1\n", "1\n")]));
    let job = |code: &str| Job {
        problem: p.clone(),
        sample: Sample {
            problem_id: "p".into(),
            sample_idx: 0,
            code: code.into(),
        },
        kind: JudgeKind::Apps,
        limits: JudgeLimits {
            test_timeout_s: 10.0,
            sample_timeout_s: 20.0,
            ..JudgeLimits::default()
        },
    };
    let v = judge_one(
        &mut slot,
        &job("import time\ntime.sleep(5)\nprint(1)"),
        &JudgeSettings::default(),
    );
    assert_eq!(v.status, SampleStatus::InternalError, "{v:?}");
    assert_eq!(v.attempts, 2);
    assert!(v.internal_error.is_some());
    assert!(!v.passed);
    assert_eq!(slot.starts, 2, "a fresh worker for the retry");
}

fn sleeper(seconds: f64) -> String {
    format!("import time\nx = input()\ntime.sleep({seconds})\nprint(x)\n")
}

#[test]
fn timeouts_are_rerun_at_twice_the_limit_and_flips_are_counted() {
    let pool = common::pool(2);
    let mut p = common::stdio_problem("slow", &[("7\n", "7\n")]);
    p.solutions = vec![sleeper(0.0)];
    let samples = vec![
        Sample {
            problem_id: "slow".into(),
            sample_idx: 0,
            code: sleeper(1.4),
        },
        Sample {
            problem_id: "slow".into(),
            sample_idx: 1,
            code: sleeper(0.0),
        },
        Sample {
            problem_id: "slow".into(),
            sample_idx: 2,
            code: sleeper(60.0),
        },
        Sample {
            problem_id: "slow".into(),
            sample_idx: 3,
            code: "print(8)".into(),
        },
    ];
    let options = EvalOptions {
        judge: JudgeChoice::Apps,
        limits: JudgeLimits {
            test_timeout_s: 1.0,
            sample_timeout_s: 3.0,
            ..JudgeLimits::default()
        },
        ks: vec![1],
        rerun_timeouts: true,
        calibrate: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let e = evaluate(&pool, &[p], &samples, &options, dir.path(), |_| {}).unwrap();
    let s = &e.summary;
    assert_eq!(s.timeouts.samples_timed_out, 2);
    assert_eq!(s.timeouts.rerun, 2);
    assert_eq!(
        s.timeouts.flips, 1,
        "the 1.4 s sleeper passes at 2 s, the 60 s one does not"
    );
    let v0 = e
        .verdicts
        .iter()
        .find(|v| v.verdict.sample_idx == 0)
        .unwrap();
    assert!(
        !v0.verdict.passed,
        "the verdict stays the one at the configured limit"
    );
    assert_eq!(v0.verdict.rerun_passed, Some(true));
    assert!(s.to_markdown().contains("1 flipped"));
}

#[test]
fn calibration_sets_each_problem_limit_from_its_reference_solution() {
    let pool = common::pool(2);
    let mut p = common::stdio_problem("cal", &[("5\n", "5\n")]);
    p.solutions = vec![sleeper(0.1)];
    let samples = vec![
        Sample {
            problem_id: "cal".into(),
            sample_idx: 0,
            code: sleeper(1.0),
        },
        Sample {
            problem_id: "cal".into(),
            sample_idx: 1,
            code: sleeper(0.1),
        },
    ];
    let mut options = EvalOptions {
        judge: JudgeChoice::Apps,
        limits: JudgeLimits::default(),
        ks: vec![1],
        rerun_timeouts: false,
        calibrate: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = evaluate(&pool, &[p.clone()], &samples, &options, dir.path(), |_| {}).unwrap();
    assert_eq!(
        plain.summary.metrics.overall.correct_samples, 2,
        "both pass at the default 4 s"
    );
    options.calibrate = Some(Calibration {
        factor: 3.0,
        floor_s: 0.5,
    });
    let dir = tempfile::tempdir().unwrap();
    let cal = evaluate(&pool, &[p], &samples, &options, dir.path(), |_| {}).unwrap();
    let v0 = cal
        .verdicts
        .iter()
        .find(|v| v.verdict.sample_idx == 0)
        .unwrap();
    assert!(!v0.verdict.passed, "1 s is over 3 × the reference's 0.1 s");
    assert_eq!(cal.summary.metrics.overall.correct_samples, 1);
}
