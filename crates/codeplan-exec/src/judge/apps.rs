//! The APPS judge: one process per sample, reference semantics (see `apps-judging.md`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use codeplan_data::{Problem, Sample, Tests};

use super::{
    blank_verdict, JudgeKind, JudgeLimits, SampleStatus, SampleVerdict, TestStatus, TestVerdict,
    WorkerFault,
};
use crate::compare::apps::compare_stdio;
use crate::pool::Slot;
use crate::worker::ReadError;

/// Entries the reference stores when a sample produced no result (hendrycks/apps).
const NO_RESULT_ENTRIES: usize = 21;

/// The expected stdout text of a test: a list of lines is joined with `"\n"`, as the reference does.
fn expected_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("\n")),
        _ => None,
    }
}

fn status_of(s: &str) -> TestStatus {
    match s {
        "timeout" => TestStatus::Timeout,
        "output_limit" => TestStatus::OutputLimit,
        _ => TestStatus::RuntimeError,
    }
}

pub(super) fn run(
    slot: &mut Slot,
    problem: &Problem,
    sample: &Sample,
    limits: &JudgeLimits,
) -> Result<SampleVerdict, WorkerFault> {
    let memory_bytes = slot.memory_bytes();
    let worker = slot.get().map_err(|e| WorkerFault(e.to_string()))?;
    let Tests::Io(io) = &problem.tests else {
        return Err(WorkerFault(format!(
            "problem {} has no input/output tests",
            problem.id
        )));
    };
    let mut verdict = blank_verdict(JudgeKind::Apps, problem, sample);
    let request = json!({
        "op": "apps",
        "code": sample.code,
        "inputs": io.inputs,
        // Standard-input outputs are compared here, never shown to the program.
        "outputs": if io.fn_name.is_some() { io.outputs.clone() } else { Vec::new() },
        "fn_name": io.fn_name,
        "test_timeout_s": limits.test_timeout_s,
        "output_chars": limits.output_bytes,
        "limits": { "memory_bytes": memory_bytes, "file_bytes": limits.output_bytes },
    });
    let start = Instant::now();
    worker
        .send(&request)
        .map_err(|e| WorkerFault(format!("send: {e:?}")))?;
    let deadline = start + Duration::from_secs_f64(limits.sample_timeout_s);
    let n = io.inputs.len();
    let mut tests: Vec<Option<TestVerdict>> = vec![None; n];
    let mut raw: Vec<Option<Value>> = vec![None; n];
    let mut load_error: Option<String> = None;
    let mut loaded = false;
    let mut killed = false;
    loop {
        match worker.read(deadline) {
            Ok(msg) => match msg["t"].as_str() {
                Some("load") => {
                    if msg["ok"] == Value::Bool(true) {
                        loaded = true;
                    } else {
                        load_error = Some(msg["error"].as_str().unwrap_or("").to_owned());
                    }
                }
                Some("test") => {
                    let Some(i) = msg["i"].as_u64().map(|i| i as usize).filter(|&i| i < n) else {
                        return Err(WorkerFault(format!("bad test index in {msg}")));
                    };
                    let time_s = msg["time_s"].as_f64().unwrap_or(0.0);
                    let memory_kb = msg["maxrss_kb"].as_u64().unwrap_or(0);
                    let status_text = msg["status"].as_str().unwrap_or("error");
                    if status_text == "ok" {
                        let (entry, status, stage) = if io.fn_name.is_some() {
                            let r = msg["result"].clone();
                            let st = if r == Value::Bool(true) {
                                TestStatus::Pass
                            } else {
                                TestStatus::WrongAnswer
                            };
                            (r, st, None)
                        } else {
                            let out = msg["stdout"].as_str().unwrap_or("");
                            let expected = expected_text(&io.outputs[i]).unwrap_or_default();
                            match compare_stdio(out, &expected) {
                                Some(stage) => (
                                    Value::Bool(true),
                                    TestStatus::Pass,
                                    Some(format!("{stage:?}")),
                                ),
                                None => (Value::Bool(false), TestStatus::WrongAnswer, None),
                            }
                        };
                        raw[i] = Some(entry);
                        tests[i] = Some(TestVerdict {
                            status,
                            time_s,
                            memory_kb,
                            stderr_tail: None,
                            stage,
                        });
                    } else {
                        raw[i] = Some(json!(-1));
                        tests[i] = Some(TestVerdict {
                            status: status_of(status_text),
                            time_s,
                            memory_kb,
                            stderr_tail: msg["error"].as_str().map(str::to_owned),
                            stage: None,
                        });
                    }
                }
                Some("exit") => {
                    verdict.stderr_tail = msg["stderr"].as_str().unwrap_or("").to_owned();
                    if let Some(sig) = msg["signal"].as_i64() {
                        if verdict.stderr_tail.is_empty() {
                            verdict.stderr_tail = format!("killed by signal {sig}");
                        }
                    }
                    break;
                }
                _ => return Err(WorkerFault(format!("unexpected message {msg}"))),
            },
            Err(ReadError::Deadline) => {
                killed = true;
                break;
            }
            Err(e) => return Err(WorkerFault(format!("worker lost: {e:?}"))),
        }
    }
    verdict.wall_s = start.elapsed().as_secs_f64();
    if killed {
        slot.discard();
        verdict.status = SampleStatus::GlobalTimeout;
        verdict.no_result_cause = Some("killed_after_join_timeout".into());
        verdict.apps_result = Some(vec![json!(-1); NO_RESULT_ENTRIES]);
        verdict.tests = fill(tests, TestStatus::Timeout);
        return Ok(verdict);
    }
    if let Some(err) = load_error {
        verdict.status = SampleStatus::CompileError;
        verdict.apps_result = Some(vec![json!(-2)]);
        verdict.stderr_tail = err;
        verdict.tests = vec![TestVerdict::without_run(TestStatus::CompileError); n];
        return Ok(verdict);
    }
    if !loaded || raw.iter().any(Option::is_none) {
        verdict.status = SampleStatus::NoResult;
        verdict.no_result_cause = Some("child_exited_without_result".into());
        verdict.apps_result = Some(vec![json!(-1); NO_RESULT_ENTRIES]);
        verdict.tests = fill(tests, TestStatus::NotRun);
        return Ok(verdict);
    }
    if io.fn_name.is_none() && reference_would_crash(&io.outputs, &tests) {
        verdict.status = SampleStatus::NoResult;
        verdict.no_result_cause = Some("child_exited_without_result".into());
        verdict.apps_result = Some(vec![json!(-1); NO_RESULT_ENTRIES]);
        verdict.tests = fill(tests, TestStatus::NotRun);
        return Ok(verdict);
    }
    let result: Vec<Value> = raw.into_iter().map(Option::unwrap).collect();
    verdict.passed = result.iter().all(|v| *v == Value::Bool(true));
    verdict.status = if verdict.passed {
        SampleStatus::Passed
    } else {
        SampleStatus::Failed
    };
    verdict.apps_result = Some(result);
    verdict.tests = fill(tests, TestStatus::NotRun);
    Ok(verdict)
}

/// Whether the reference harness would die (no result) on these expected outputs.
///
/// It joins a list of lines before running a test (a non-text element raises outside any
/// `try`), turns an object with integer keys into a one-element list first (same fate), and
/// calls text methods on the expected value after a test ran (anything but text raises).
fn reference_would_crash(outputs: &[Value], tests: &[Option<TestVerdict>]) -> bool {
    let ran = |t: &Option<TestVerdict>| {
        t.as_ref()
            .is_some_and(|t| matches!(t.status, TestStatus::Pass | TestStatus::WrongAnswer))
    };
    outputs
        .iter()
        .zip(tests)
        .any(|(expected, test)| match expected {
            Value::String(_) => false,
            Value::Array(items) => !items.iter().all(Value::is_string),
            Value::Object(map) => map.keys().all(|k| py_int(k)) || ran(test),
            _ => ran(test),
        })
}

/// Whether Python's `int(text)` accepts `text` (decimal, optional sign, surrounding whitespace,
/// single underscores between digits).
fn py_int(text: &str) -> bool {
    let t = crate::compare::pytext::py_strip(text);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits
            .chars()
            .all(|c| c == '_' || crate::compare::pytext::unicode_decimal(c).is_some())
}

fn fill(tests: Vec<Option<TestVerdict>>, missing: TestStatus) -> Vec<TestVerdict> {
    tests
        .into_iter()
        .map(|t| t.unwrap_or(TestVerdict::without_run(missing)))
        .collect()
}
