//! The strict judge: every test in a fresh child running the program as `__main__`, with
//! real byte stdin/stdout, a CPU limit and a wall-clock backstop owned by Rust.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use codeplan_data::{Problem, Sample, Tests};

use super::{
    blank_verdict, JudgeKind, JudgeLimits, SampleStatus, SampleVerdict, TestStatus, TestVerdict,
    WorkerFault,
};
use crate::compare::strict::{tokens_match, values_match};
use crate::pool::Slot;
use crate::worker::ReadError;

const EXIT_COMPILE_ERROR: i64 = 71;
const SIGKILL: i64 = 9;
const SIGXCPU: i64 = 24;
const SIGXFSZ: i64 = 25;

/// A fresh random marker the harness sends back only after a check program ran to its end.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    assert_eq!(n, bytes.len() as isize, "getrandom failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes_of(latin1: &str) -> Vec<u8> {
    latin1.chars().map(|c| c as u32 as u8).collect()
}

fn expected_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

pub(super) fn run(
    slot: &mut Slot,
    problem: &Problem,
    sample: &Sample,
    limits: &JudgeLimits,
) -> Result<SampleVerdict, WorkerFault> {
    let memory_bytes = slot.memory_bytes();
    let mut verdict = blank_verdict(JudgeKind::Strict, problem, sample);
    let nonce = nonce();
    let (kind, code, inputs, outputs, fn_name) = match &problem.tests {
        Tests::Io(io) => (
            if io.fn_name.is_some() {
                "call"
            } else {
                "stdio"
            },
            sample.code.clone(),
            io.inputs.clone(),
            io.outputs.clone(),
            io.fn_name.clone(),
        ),
        Tests::Check(c) => (
            "check",
            format!(
                "{}\n\n{}\n\ncheck({})\n",
                sample.code, c.test, c.entry_point
            ),
            Vec::new(),
            Vec::new(),
            None,
        ),
    };
    let n = if kind == "check" { 1 } else { inputs.len() };
    let mut tests: Vec<Option<TestVerdict>> = vec![None; n];
    let mut verdict_ok: Vec<Option<bool>> = vec![None; n];
    let start = Instant::now();
    let wall = Duration::from_secs_f64(limits.test_timeout_s * limits.wall_factor + 1.0);
    let mut next = 0usize;
    let mut compile_error = false;
    while next < n && !compile_error {
        let worker = slot.get().map_err(|e| WorkerFault(e.to_string()))?;
        // Expected outputs stay here: the program could read anything sent to its process.
        let request = json!({
            "op": "strict", "kind": kind, "code": code, "inputs": inputs,
            "fn_name": fn_name, "nonce": (kind == "check").then_some(&nonce), "float_tol": limits.float_tol, "start": next,
            "limits": {
                "cpu_s": limits.test_timeout_s, "memory_bytes": memory_bytes,
                "file_bytes": limits.output_bytes, "open_files": 64,
            },
        });
        worker
            .send(&request)
            .map_err(|e| WorkerFault(format!("send: {e:?}")))?;
        loop {
            match worker.read(Instant::now() + wall) {
                Ok(msg) => match msg["t"].as_str() {
                    // Only the frame its kind produces counts: a check program's completion
                    // marker, or a call-based test's returned value.
                    Some(t @ ("verdict" | "value")) if (t == "verdict") == (kind == "check") => {
                        if let Some(i) = msg["i"].as_u64().map(|i| i as usize).filter(|&i| i < n) {
                            verdict_ok[i] = Some(if t == "verdict" {
                                msg["nonce"].as_str() == Some(nonce.as_str())
                            } else {
                                msg["json"]
                                    .as_str()
                                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                                    .is_some_and(|out| {
                                        values_match(&out, &outputs[i], limits.float_tol)
                                    })
                            });
                        }
                    }
                    Some("test") => {
                        let Some(i) = msg["i"].as_u64().map(|i| i as usize).filter(|&i| i < n)
                        else {
                            return Err(WorkerFault(format!("bad test index in {msg}")));
                        };
                        let t = classify(&msg, kind, &outputs, i, verdict_ok[i], limits);
                        compile_error |= t.status == TestStatus::CompileError;
                        tests[i] = Some(t);
                        next = i + 1;
                        if compile_error {
                            verdict.stderr_tail = msg["stderr"].as_str().unwrap_or("").to_owned();
                        }
                    }
                    // The other kind's frame: ignored (its absence fails the test).
                    Some("verdict" | "value") => {}
                    Some("exit") => break,
                    _ => return Err(WorkerFault(format!("unexpected message {msg}"))),
                },
                Err(ReadError::Deadline) => {
                    // A test outlived its wall-clock backstop (sleeping, blocked): kill it.
                    tests[next] = Some(TestVerdict {
                        status: TestStatus::Timeout,
                        time_s: wall.as_secs_f64(),
                        memory_kb: 0,
                        stderr_tail: Some("wall-clock backstop expired".into()),
                        stage: None,
                    });
                    next += 1;
                    slot.discard();
                    break;
                }
                Err(e) => return Err(WorkerFault(format!("worker lost: {e:?}"))),
            }
        }
    }
    verdict.wall_s = start.elapsed().as_secs_f64();
    let missing = if compile_error {
        TestStatus::CompileError
    } else {
        TestStatus::NotRun
    };
    verdict.tests = tests
        .into_iter()
        .map(|t| t.unwrap_or(TestVerdict::without_run(missing)))
        .collect();
    finish(&mut verdict, compile_error);
    Ok(verdict)
}

/// Sets the overall status from the per-test verdicts.
pub(super) fn finish(verdict: &mut SampleVerdict, compile_error: bool) {
    verdict.passed =
        !verdict.tests.is_empty() && verdict.tests.iter().all(|t| t.status == TestStatus::Pass);
    verdict.status = if compile_error {
        SampleStatus::CompileError
    } else if verdict.passed {
        SampleStatus::Passed
    } else {
        SampleStatus::Failed
    };
}

fn classify(
    msg: &Value,
    kind: &str,
    outputs: &[Value],
    i: usize,
    verdict_ok: Option<bool>,
    limits: &JudgeLimits,
) -> TestVerdict {
    let stderr = msg["stderr"].as_str().unwrap_or("").to_owned();
    let cpu = msg["cpu_s"].as_f64().unwrap_or(0.0);
    let status = match (msg["exit_code"].as_i64(), msg["signal"].as_i64()) {
        (_, Some(SIGXCPU)) => TestStatus::Timeout,
        (_, Some(SIGKILL)) if cpu >= limits.test_timeout_s => TestStatus::Timeout,
        (_, Some(SIGXFSZ)) => TestStatus::OutputLimit,
        (_, Some(SIGKILL)) => TestStatus::MemoryLimit,
        (_, Some(_)) => TestStatus::RuntimeError,
        (Some(EXIT_COMPILE_ERROR), _) => TestStatus::CompileError,
        (Some(0), _) => {
            let stdout = bytes_of(msg["stdout"].as_str().unwrap_or(""));
            if stdout.len() as u64 > limits.output_bytes {
                TestStatus::OutputLimit
            } else {
                let ok = match kind {
                    "stdio" => {
                        tokens_match(&stdout, &expected_bytes(&outputs[i]), limits.float_tol)
                    }
                    _ => verdict_ok == Some(true),
                };
                if ok {
                    TestStatus::Pass
                } else if kind != "stdio" && verdict_ok.is_none() {
                    // Exited "successfully" without returning a value or finishing the checks.
                    TestStatus::RuntimeError
                } else {
                    TestStatus::WrongAnswer
                }
            }
        }
        _ if stderr.contains("MemoryError") => TestStatus::MemoryLimit,
        _ if kind == "check" && stderr.contains("AssertionError") => TestStatus::WrongAnswer,
        _ => TestStatus::RuntimeError,
    };
    TestVerdict {
        status,
        time_s: msg["time_s"].as_f64().unwrap_or(0.0),
        memory_kb: msg["maxrss_kb"].as_u64().unwrap_or(0),
        stderr_tail: (!stderr.is_empty()).then_some(stderr),
        stage: None,
    }
}
