//! `codeplan distill` against a real OpenAI-compatible server (`codeplan serve` with the real
//! smollm2-135m), through a fault-injecting proxy: outputs, zero requests on a rerun, retries,
//! quota, budget caps, SIGKILL and resume, batch files, the local teacher, and bad settings.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy};
use common::{codeplan, have_smollm2, repo, start_server, text};
use serde_json::Value;

const TEMPLATES: &str = "crates/codeplan/tests/data/short-templates.toml";

/// Kills the server when the test ends, however it ends.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server() -> Server {
    let (child, url) = start_server("smollm2-135m");
    Server(child, url)
}

/// A run on two APPS problems with short prompts; plans of at most 96 tokens, validation code
/// cut at 24 tokens (so it is recorded as a bad answer and kept unvalidated).
fn args(url: &str, out: &Path, cache: &Path) -> Vec<String> {
    [
        "distill",
        "--data",
        "data/apps/train.jsonl",
        "--ids",
        "2004,60",
        "--teacher-url",
        url,
        "--teacher-model",
        "smollm2-135m",
        "--plans-per-problem",
        "2",
        "--max-tokens",
        "96",
        "--code-max-tokens",
        "24",
        "--templates",
        TEMPLATES,
        "--when-none-pass",
        "unvalidated",
        "--concurrency",
        "1",
        "--retry-base",
        "0.05",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--cache-dir".into(),
        cache.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .collect()
}

fn run(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    codeplan(&refs)
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Answer keys in the ledger; asserts none is recorded twice.
fn ledger_answers(out: &Path) -> Vec<String> {
    let keys: Vec<String> = jsonl(&out.join("ledger.jsonl"))
        .into_iter()
        .filter(|e| e["event"] == "answer")
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "an answer is in the ledger twice");
    keys
}

#[test]
fn a_run_keeps_every_answer_and_a_rerun_asks_nothing() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    let proxy = Proxy::start(&server.1, &[], None, Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("run"), tmp.path().join("cache"));
    let secret = "sk-test-not-a-real-key-7f3a9c";
    let mut a = args(&proxy.url(), &out, &cache);
    a.extend(["--api-key-env".into(), "CODEPLAN_TEST_KEY".into()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(&refs)
        .env("CODEPLAN_TEST_KEY", secret)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    // 2 problems × 2 candidates: 4 plan requests, then one validation request per plan
    // that passed the leak guard.
    let candidates = jsonl(&out.join("candidates.jsonl"));
    assert_eq!(candidates.len(), 4);
    let s = summary(&out);
    let sent = proxy.seen().len();
    let plan_q = s["plan_stage"]["questions"].as_u64().unwrap() as usize;
    let code_q = s["code_stage"]["questions"].as_u64().unwrap() as usize;
    assert_eq!(plan_q, 4);
    assert_eq!(
        sent,
        plan_q + code_q,
        "one request per question, nothing repeated"
    );
    for c in &candidates {
        assert!(
            c["outcome"].is_string(),
            "every candidate has an outcome: {c}"
        );
        assert_ne!(c["outcome"], "pending");
        assert_ne!(c["outcome"], "request_failed", "{c}");
        assert!(c["usage"]["plan"]["prompt_tokens"].as_u64().is_some());
    }
    let plans = jsonl(&out.join("plans.jsonl"));
    for p in &plans {
        assert!(!p["plan"].as_str().unwrap().trim().is_empty());
        assert_eq!(p["teacher_model"], "smollm2-135m");
        assert_eq!(p["reasoning"], "backward");
        assert_eq!(p["template_hash"].as_str().unwrap().len(), 64);
        assert!(p["solution_idx"].is_u64());
    }
    assert_eq!(
        plans.len(),
        candidates
            .iter()
            .filter(|c| c["outcome"].as_str().unwrap().starts_with("kept"))
            .count()
    );
    assert_eq!(ledger_answers(&out).len(), sent);
    assert!(out.join("summary.md").exists() && out.join("run.json").exists());

    // The key went to the server, and nowhere else.
    for seen in proxy.seen() {
        assert_eq!(
            seen.authorization.as_deref(),
            Some(&*format!("Bearer {secret}"))
        );
    }
    for dir in [&out, &cache] {
        for entry in walk(dir) {
            let body = std::fs::read(&entry).unwrap();
            assert!(
                !String::from_utf8_lossy(&body).contains(secret),
                "the API key was written to {}",
                entry.display()
            );
        }
    }

    // The same settings again: zero requests, the same files.
    let plans_before = std::fs::read(out.join("plans.jsonl")).unwrap();
    let o = run(&args(&proxy.url(), &out, &cache));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(proxy.seen().len(), sent, "a rerun sent requests");
    assert_eq!(
        std::fs::read(out.join("plans.jsonl")).unwrap(),
        plans_before
    );
    // A new folder with the same settings: answered from the shared cache.
    let other = tmp.path().join("other");
    let o = run(&args(&proxy.url(), &other, &cache));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(proxy.seen().len(), sent);
    assert_eq!(
        std::fs::read(other.join("plans.jsonl")).unwrap(),
        plans_before
    );
    assert_eq!(summary(&other)["plan_stage"]["reused"], 4);

    // Changing a validation setting re-asks only the validation requests.
    let mut changed = args(&proxy.url(), &out, &cache);
    let i = changed
        .iter()
        .position(|a| a == "--code-max-tokens")
        .unwrap();
    changed[i + 1] = "20".into();
    let o = run(&changed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(proxy.seen().len(), sent + code_q);
    for seen in &proxy.seen()[sent..] {
        assert!(seen.body.contains("\"max_tokens\":20"), "{}", seen.body);
    }

    // A dry run now: nothing left to ask, nothing sent.
    let mut dry = changed.clone();
    dry.push("--dry-run".into());
    let o = run(&dry);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("requests to send: 0 plan + 0 validation"),
        "{stdout}"
    );
    assert_eq!(proxy.seen().len(), sent + code_q);
    // And with more candidates: the new plan requests are counted, not sent.
    let k = dry.iter().position(|a| a == "--plans-per-problem").unwrap();
    dry[k + 1] = "3".into();
    let o = run(&dry);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("requests to send: 2 plan + 2 validation"),
        "{stdout}"
    );
    assert_eq!(proxy.seen().len(), sent + code_q);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn faults_are_retried_and_every_request_is_accounted_for() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    let faults = [
        Fault::RateLimit,
        Fault::ServerError,
        Fault::Hang(Duration::from_secs(35)),
        Fault::Truncated,
        Fault::Malformed,
    ];
    let proxy = Proxy::start(&server.1, &faults, None, Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut a = args(&proxy.url(), &out, &tmp.path().join("cache"));
    // Short answers, and a timeout far above their time on a loaded machine but below the hang.
    for (flag, value) in [("--max-tokens", "32"), ("--code-max-tokens", "16")] {
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = value.into();
    }
    a.extend(["--request-timeout".into(), "30".into()]);
    let started = Instant::now();
    let o = run(&a);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The 429 asked for a 1 s wait, and it was honoured.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let s = summary(&out);
    let questions = (s["plan_stage"]["questions"].as_u64().unwrap()
        + s["code_stage"]["questions"].as_u64().unwrap()) as usize;
    let retries = (s["plan_stage"]["retries"].as_u64().unwrap()
        + s["code_stage"]["retries"].as_u64().unwrap()) as usize;
    let ledger = std::fs::read_to_string(out.join("ledger.jsonl")).unwrap();
    assert_eq!(retries, faults.len(), "{s}\n{ledger}");
    assert_eq!(proxy.seen().len(), questions + faults.len());
    // Every question got its answer once; the faults are in the first answer's record.
    assert_eq!(ledger_answers(&out).len(), questions);
    let first = &jsonl(&out.join("ledger.jsonl"))[0];
    let statuses: Vec<Value> = first["retries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses[..2], [Value::from(429), Value::from(500)]);
    assert!(statuses[2].is_null(), "the hang has no status: {first}");
    for c in jsonl(&out.join("candidates.jsonl")) {
        assert_ne!(c["outcome"], "request_failed", "{c}");
        assert_ne!(c["outcome"], "pending", "{c}");
    }
}

#[test]
fn a_server_that_keeps_failing_is_recorded_and_a_quota_error_is_not_retried() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    let tmp = tempfile::tempdir().unwrap();

    // Retries exhausted: recorded per request, the run completes.
    let failing = Proxy::start(&server.1, &[], Some(Fault::ServerError), Duration::ZERO);
    let out = tmp.path().join("failing");
    let mut a = args(&failing.url(), &out, &tmp.path().join("cache"));
    a.extend(["--max-retries".into(), "2".into()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(failing.seen().len(), 4 * 3, "4 plan requests × 3 attempts");
    for c in jsonl(&out.join("candidates.jsonl")) {
        assert_eq!(c["outcome"], "request_failed", "{c}");
        assert!(c["error"].as_str().unwrap().contains("HTTP 500"), "{c}");
    }
    let failures = jsonl(&out.join("ledger.jsonl"))
        .into_iter()
        .filter(|e| e["event"] == "failure")
        .count();
    assert_eq!(failures, 4);
    assert!(jsonl(&out.join("plans.jsonl")).is_empty());

    // No quota: one request, then a clear stop.
    let broke = Proxy::start(&server.1, &[], Some(Fault::Quota), Duration::ZERO);
    let out = tmp.path().join("broke");
    let o = run(&args(&broke.url(), &out, &tmp.path().join("cache")));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("quota") && err.contains("retrying will not help"),
        "{err}"
    );
    assert_eq!(broke.seen().len(), 1, "an exhausted quota is not retried");
}

#[test]
fn a_killed_run_resumes_without_repeating_an_answered_request() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    // Each answer is held 400 ms, so the kill lands between answers.
    let proxy = Proxy::start(&server.1, &[], None, Duration::from_millis(400));
    let tmp = tempfile::tempdir().unwrap();
    let with_no_cache = |out: &Path| {
        let mut a = args(&proxy.url(), out, &tmp.path().join("unused"));
        a.push("--no-cache".into());
        a
    };
    let reference = tmp.path().join("reference");
    let o = run(&with_no_cache(&reference));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let needed = proxy.seen().len();

    let killed = tmp.path().join("killed");
    let a = with_no_cache(&killed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(&a)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ledger = killed.join("ledger.jsonl");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let lines = std::fs::read_to_string(&ledger).map_or(0, |t| t.lines().count());
        if lines >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never answered 3 requests"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();
    let o = run(&a);
    assert!(o.status.success(), "{}", text(&o.stderr));

    for name in ["plans.jsonl", "candidates.jsonl"] {
        assert_eq!(
            std::fs::read(killed.join(name)).unwrap(),
            std::fs::read(reference.join(name)).unwrap(),
            "{name} differs from an uninterrupted run's"
        );
    }
    let seen = proxy.seen();
    let run2 = &seen[needed..];
    let answered_before: HashSet<&str> = run2
        .iter()
        .filter(|s| s.delivered.is_some_and(|d| d < killed_at))
        .map(|s| s.body.as_str())
        .collect();
    assert!(answered_before.len() >= 3);
    for s in run2.iter().filter(|s| s.received > killed_at) {
        assert!(
            !answered_before.contains(s.body.as_str()),
            "a request answered before the kill was sent again"
        );
    }
    // At most the one request in flight at the kill was asked twice.
    assert!(
        run2.len() <= needed + 1,
        "{} requests for {needed}",
        run2.len()
    );
    ledger_answers(&killed);
}

#[test]
fn a_budget_cap_stops_cleanly_and_a_rerun_continues() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    let proxy = Proxy::start(&server.1, &[], None, Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut a = args(&proxy.url(), &out, &tmp.path().join("cache"));
    a.extend(["--max-requests".into(), "3".into()]);
    let o = run(&a);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("stopped at the budget after 3 new request(s)"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(proxy.seen().len(), 3);
    let s = summary(&out);
    assert_eq!(s["stopped"]["reason"], "budget");
    assert!(!s["incomplete_problems"].as_array().unwrap().is_empty());
    let pending = jsonl(&out.join("candidates.jsonl"))
        .into_iter()
        .filter(|c| c["outcome"] == "pending")
        .count();
    assert!(pending >= 1);

    let o = run(&args(&proxy.url(), &out, &tmp.path().join("cache")));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = summary(&out);
    let questions = (s["plan_stage"]["questions"].as_u64().unwrap()
        + s["code_stage"]["questions"].as_u64().unwrap()) as usize;
    assert_eq!(
        proxy.seen().len(),
        questions,
        "the 3 paid answers were not asked again"
    );
    assert!(s["stopped"].is_null());
}

/// POSTs `body` to `url` with Python's HTTP client (as a batch runner would) and returns the
/// response body.
fn post(url: &str, body: &Value) -> Value {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={'Content-Type': 'application/json'}), timeout=600); print(r.read().decode())",
            &format!("{url}/v1/chat/completions"),
            &body.to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_str(&text(&o.stdout)).unwrap()
}

#[test]
fn batch_files_export_and_import_through_both_stages() {
    if !have_smollm2() {
        return;
    }
    let server = server();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "distill",
            "--data",
            "data/apps/train.jsonl",
            "--ids",
            "2004,60",
            "--teacher-model",
            "smollm2-135m",
            "--plans-per-problem",
            "2",
            "--max-tokens",
            "96",
            "--templates",
            TEMPLATES,
            "--no-cache",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(out.display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let requests = tmp.path().join("plans-requests.jsonl");
    let o = run(&base(&["--batch-export", requests.to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines = jsonl(&requests);
    assert_eq!(lines.len(), 4);
    // The batch runner: each body goes to the real server.
    let results = tmp.path().join("plans-results.jsonl");
    let mut text_out = String::new();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["method"], "POST");
        assert_eq!(l["url"], "/v1/chat/completions");
        let body = post(&server.1, &l["body"]);
        let line = serde_json::json!({"id": format!("r{i}"), "custom_id": l["custom_id"], "error": null,
            "response": {"status_code": 200, "request_id": format!("q{i}"), "body": body}});
        text_out.push_str(&format!("{line}\n"));
    }
    std::fs::write(&results, text_out).unwrap();

    let code_requests = tmp.path().join("code-requests.jsonl");
    let o = run(&base(&[
        "--batch-import",
        results.to_str().unwrap(),
        "--batch-export",
        code_requests.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let code_lines = jsonl(&code_requests);
    assert!(!code_lines.is_empty(), "no plan reached validation");
    // Every validation request is answered with problem 2004's reference solution: it passes
    // 2004's tests and fails 60's.
    let problems = jsonl(&repo().join("data/apps/train.jsonl"));
    let p2004 = problems.iter().find(|p| p["problem_id"] == 2004).unwrap();
    let solutions: Vec<String> =
        serde_json::from_str(p2004["solutions"].as_str().unwrap()).unwrap();
    let answer = format!("```python\n{}\n```", solutions[0]);
    let code_results = tmp.path().join("code-results.jsonl");
    let mut text_out = String::new();
    for l in &code_lines {
        let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20}});
        let line = serde_json::json!({"custom_id": l["custom_id"], "error": null, "response": {"status_code": 200, "body": body}});
        text_out.push_str(&format!("{line}\n"));
    }
    std::fs::write(&code_results, text_out).unwrap();
    let o = run(&base(&[
        "--batch-import",
        code_results.to_str().unwrap(),
        "--batch-export",
        tmp.path().join("none.jsonl").to_str().unwrap(),
        "--when-none-pass",
        "drop",
    ]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        !tmp.path().join("none.jsonl").exists(),
        "nothing left to export"
    );

    let candidates = jsonl(&out.join("candidates.jsonl"));
    let judged: Vec<&Value> = candidates
        .iter()
        .filter(|c| !c["validation"].is_null())
        .collect();
    assert_eq!(judged.len(), code_lines.len());
    for c in judged {
        let passed = c["validation"]["passed"].as_bool().unwrap();
        assert_eq!(passed, c["problem_id"] == "2004", "{c}");
        assert_eq!(
            c["outcome"],
            if passed { "kept" } else { "failed_validation" }
        );
        assert_eq!(c["validation"]["tests_total"], if passed { 19 } else { 1 });
    }
    for p in jsonl(&out.join("plans.jsonl")) {
        assert_eq!(p["problem_id"], "2004");
        assert_eq!(p["validated"], true);
        assert_eq!(p["validation"]["pass_fraction"], 1.0);
    }
    let sources: HashSet<String> = jsonl(&out.join("ledger.jsonl"))
        .iter()
        .map(|e| e["source"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(sources, HashSet::from(["batch".to_owned()]));
    drop(server);
}

#[test]
fn a_local_teacher_needs_no_server() {
    if !have_smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let a: Vec<String> = [
        "distill",
        "--data",
        "data/apps/train.jsonl",
        "--ids",
        "2004",
        "--teacher",
        "local:smollm2-135m",
        "--plans-per-problem",
        "1",
        "--max-tokens",
        "96",
        "--templates",
        TEMPLATES,
        "--no-validate",
        "--cache-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        tmp.path().join("cache").display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .collect();
    let o = run(&a);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plans = jsonl(&out.join("plans.jsonl"));
    assert_eq!(plans.len(), 1, "{}", text(&o.stdout));
    assert_eq!(plans[0]["validated"], false);
    assert!(plans[0]["validation"].is_null());
    let s = summary(&out);
    assert!(s["teacher"]["identity"]
        .as_str()
        .unwrap()
        .starts_with("local:smollm2-135m:"));
    assert_eq!(s["plan_stage"]["sent"], 1);
    let o = run(&a);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(summary(&out)["plan_stage"]["reused"], 1);
    assert_eq!(ledger_answers(&out).len(), 1);
}

#[test]
fn bad_settings_are_named_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let base = [
        "distill",
        "--data",
        "data/apps/train.jsonl",
        "--ids",
        "2004",
        "--out",
        o,
    ];
    let url = [
        "--teacher-url",
        "http://127.0.0.1:9/v1",
        "--teacher-model",
        "m",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "no teacher given"),
        (vec!["--teacher", "qwen"], "--teacher must be local:NAME"),
        (
            vec!["--teacher-url", "http://x/v1"],
            "--teacher-url needs --teacher-model",
        ),
        (vec!["--teacher-model", "m"], "needs --teacher-url"),
        (
            vec!["--teacher-url", "ftp://x", "--teacher-model", "m"],
            "must start with http",
        ),
        (
            [&url[..], &["--plans-per-problem", "0"]].concat(),
            "--plans-per-problem must be at least 1",
        ),
        (
            [&url[..], &["--min-pass-fraction", "1.5"]].concat(),
            "--min-pass-fraction must be in (0, 1]",
        ),
        (
            [&url[..], &["--temperature", "-1"]].concat(),
            "--temperature must be a number",
        ),
        (
            [&url[..], &["--max-cost", "5"]].concat(),
            "--max-cost needs a price",
        ),
        (
            [&url[..], &["--price-in", "1"]].concat(),
            "give both --price-in and --price-out",
        ),
        (
            [&url[..], &["--api-key-env", "CODEPLAN_NO_SUCH_VAR"]].concat(),
            "CODEPLAN_NO_SUCH_VAR",
        ),
        (
            [&url[..], &["--concurrency", "0"]].concat(),
            "--concurrency must be at least 1",
        ),
    ];
    // The error of a run with `extra` after the common arguments (it must fail).
    let error_with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let r = codeplan(&args);
        assert!(!r.status.success(), "{args:?} succeeded");
        text(&r.stderr)
    };
    for (extra, want) in cases {
        let err = error_with(&extra);
        assert!(err.contains(want), "{extra:?}: wanted {want:?} in {err}");
    }
    // A template with an unknown placeholder: file, section and name.
    let t = tmp.path().join("t.toml");
    std::fs::write(
        &t,
        "[code]\nsystem = \"\"\nuser = \"{{ plan }} {{ soluton }}\"\n",
    )
    .unwrap();
    let err = error_with(&[&url[..], &["--templates", t.to_str().unwrap()]].concat());
    assert!(
        err.contains("t.toml") && err.contains("[code] user") && err.contains("soluton"),
        "{err}"
    );
    // A malformed batch results file: file and line.
    let r = tmp.path().join("results.jsonl");
    let line = format!(
        "{{\"custom_id\": \"{}\", \"response\": {{}}}}\n",
        "a".repeat(64)
    );
    std::fs::write(&r, line).unwrap();
    let results = r.to_str().unwrap();
    let err = error_with(&[
        "--teacher-model",
        "m",
        "--batch-export",
        "x.jsonl",
        "--batch-import",
        results,
    ]);
    assert!(
        err.contains("results.jsonl line 1") && err.contains("status_code"),
        "{err}"
    );
    // A damaged ledger is named, and left as it is.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("ledger.jsonl"), "garbage\n{}\n").unwrap();
    let err = error_with(&["--teacher-model", "m", "--dry-run"]);
    assert!(err.contains("ledger.jsonl line 1"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("ledger.jsonl")).unwrap(),
        "garbage\n{}\n"
    );
}
