//! The `codeplan` binary end to end: real data, real sandboxed Python, and a clear error for
//! every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn codeplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("codeplan runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Reference solution 0 of APPS test problem 0, from the bundled data.
fn apps_test_solution() -> String {
    let text = std::fs::read_to_string(repo().join("data/apps/test.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let sols: Vec<String> = serde_json::from_str(first["solutions"].as_str().unwrap()).unwrap();
    sols[0].clone()
}

#[test]
fn eval_judges_resumes_and_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let good = apps_test_solution();
    let lines = [
        serde_json::json!({"problem_id": 0, "sample_idx": 0, "code": good}),
        serde_json::json!({"problem_id": 0, "sample_idx": 1, "code": "print('no idea')"}),
        serde_json::json!({"problem_id": 0, "sample_idx": 2, "code": good}),
        serde_json::json!({"problem_id": 1, "sample_idx": 0, "code": "syntax error here ("}),
    ];
    let samples = write(
        dir.path(),
        "samples.jsonl",
        &lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    );
    let out = dir.path().join("out");
    let args = [
        "eval",
        "--data",
        "data/apps/test.jsonl",
        "--ids",
        "0,1",
        "--samples",
        &samples,
        "--judge",
        "apps",
        "--k",
        "1,2,3",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = codeplan(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["samples"], 4);
    assert_eq!(summary["duplicates"], 1, "identical code is judged once");
    assert_eq!(summary["judged_now"], 4);
    // Problem 0: 2 of 3 correct; problem 1: 0 of 1 → pass@1 = (2/3 + 0) / 2.
    let p1 = summary["metrics"]["overall"]["pass_at_k"]["1"]
        .as_f64()
        .unwrap();
    assert!((p1 - 1.0 / 3.0).abs() < 1e-9, "{p1}");
    assert!(
        summary["metrics"]["overall"]["pass_at_k"]
            .get("2")
            .is_none(),
        "k=2 > n for problem 1"
    );
    assert_eq!(summary["sample_status"]["compile_error"], 1);
    assert_eq!(
        summary["environment"]["python"]
            .as_str()
            .unwrap()
            .split('.')
            .next(),
        Some("3")
    );
    assert!(stdout(&o).contains("pass@1"));

    let verdicts: Vec<Value> = std::fs::read_to_string(out.join("verdicts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 4);
    let compile = verdicts.iter().find(|v| v["problem_id"] == "1").unwrap();
    assert_eq!(compile["apps_result"], serde_json::json!([-2]));
    let good_v = verdicts
        .iter()
        .find(|v| v["problem_id"] == "0" && v["sample_idx"] == 0)
        .unwrap();
    assert!(good_v["apps_result"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| *r == Value::Bool(true)));
    assert!(good_v["tests"][0]["time_s"].is_number());

    // A rerun with the same settings judges nothing again.
    let o = codeplan(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = read_json(&out.join("summary.json"));
    assert_eq!(again["reused"], 4);
    assert_eq!(again["judged_now"], 0);
    assert_eq!(again["metrics"], summary["metrics"]);

    // Changing a limit re-judges everything.
    let mut changed = args.to_vec();
    changed.extend(["--timeout", "5"]);
    let o = codeplan(&changed);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&out.join("summary.json"))["judged_now"], 4);
}

#[test]
fn eval_accepts_human_eval_style_and_fenced_answers() {
    let dir = tempfile::tempdir().unwrap();
    let answer = "Here you go:\n```python\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n";
    let samples = write(
        dir.path(),
        "he.jsonl",
        &format!(
            "{}\n{}\n",
            serde_json::json!({"task_id": "HumanEval/0", "completion": answer}),
            serde_json::json!({"task_id": "HumanEval/0", "completion": "```python\n    return False\n```"}),
        ),
    );
    let out = dir.path().join("out");
    let o = codeplan(&[
        "eval",
        "--data",
        "data/humaneval/HumanEval.jsonl.gz",
        "--ids",
        "HumanEval/0",
        "--samples",
        &samples,
        "--extract",
        "fenced",
        "--k",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["metrics"]["overall"]["correct_samples"], 1);
    assert_eq!(s["metrics"]["overall"]["pass_at_k"]["1"], 0.5);
    // HumanEval has no levels: one `unrated` group, shown once as the overall row.
    assert_eq!(s["metrics"]["by_difficulty"]["unrated"]["problems"], 1);
    let table = stdout(&o);
    assert!(table.contains("| **overall** | 1 | 2 |"), "{table}");
    assert!(!table.contains("| unrated |"), "{table}");
}

#[test]
fn data_check_reports_health() {
    let dir = tempfile::tempdir().unwrap();
    let o = codeplan(&[
        "data",
        "check",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--ids",
        "MbppEval/2,MbppEval/98",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let health = read_json(&dir.path().join("health.json"));
    let by_id = |id: &str| {
        health
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["problem_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("MbppEval/2")["solutions_passed"], 1);
    // MBPP's test for 98 uses math.isclose without importing math: reported, with the reason.
    let bad = by_id("MbppEval/98");
    assert_eq!(bad["solutions_passed"], 0);
    assert!(
        bad["first_failure"].as_str().unwrap().contains("NameError"),
        "{bad}"
    );
    assert!(stdout(&o).contains("MbppEval/98"));
}

#[test]
fn config_file_is_read_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let samples = write(
        dir.path(),
        "s.jsonl",
        &format!(
            "{}\n",
            serde_json::json!({"problem_id": "HumanEval/1", "code": "x = 1"})
        ),
    );
    let out = dir.path().join("o");
    let config = write(
        dir.path(),
        "eval.toml",
        &format!(
            "data = [\"data/humaneval/HumanEval.jsonl.gz\"]\nsamples = {:?}\nk = [1]\nout = {:?}\njudge = \"strict\"\njobs = 1\n",
            samples,
            dir.path().join("from-config").display().to_string()
        ),
    );
    let o = codeplan(&["eval", "--config", &config, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.join("summary.json").exists(),
        "--out overrides the file"
    );
    assert!(!dir.path().join("from-config").exists());
    assert_eq!(
        read_json(&out.join("summary.json"))["environment"]["jobs"],
        1
    );
}

#[test]
fn bad_input_gets_a_clear_error_naming_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    let out = out.to_str().unwrap();
    let he = "data/humaneval/HumanEval.jsonl.gz";
    let malformed = write(
        d,
        "bad.jsonl",
        "{\"problem_id\": \"HumanEval/0\", \"code\": \"x\"}\n{not json\n",
    );
    let wrong_type = write(
        d,
        "type.jsonl",
        "{\"problem_id\": \"HumanEval/0\", \"code\": 5}\n",
    );
    let unknown = write(
        d,
        "unknown.jsonl",
        "{\"problem_id\": \"HumanEval/999\", \"code\": \"x\"}\n",
    );
    let bad_apps = write(
        d,
        "apps.jsonl",
        "{\"problem_id\": 7, \"question\": \"q\", \"solutions\": \"[\", \"input_output\": \"{}\", \"difficulty\": \"interview\"}\n",
    );
    let bad_config = write(d, "c.toml", "samples = \"x.jsonl\"\nbogus_key = 3\n");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["eval", "--data", he, "--out", out], vec!["--samples"]),
        (
            vec!["eval", "--samples", &malformed, "--out", out],
            vec!["--data"],
        ),
        (
            vec![
                "eval",
                "--data",
                "nope.jsonl",
                "--samples",
                &malformed,
                "--out",
                out,
            ],
            vec!["nope.jsonl"],
        ),
        (
            vec!["eval", "--data", he, "--samples", &malformed, "--out", out],
            vec!["bad.jsonl", ":2"],
        ),
        (
            vec!["eval", "--data", he, "--samples", &wrong_type, "--out", out],
            vec!["type.jsonl", ":1", "code"],
        ),
        (
            vec!["eval", "--data", he, "--samples", &unknown, "--out", out],
            vec!["unknown.jsonl", "HumanEval/999"],
        ),
        (
            vec![
                "eval",
                "--data",
                &bad_apps,
                "--samples",
                &malformed,
                "--out",
                out,
            ],
            vec!["apps.jsonl", ":1", "7", "solutions"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--samples",
                &malformed,
                "--k",
                "0",
                "--out",
                out,
            ],
            vec!["--k"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--samples",
                &malformed,
                "--timeout",
                "-1",
                "--out",
                out,
            ],
            vec!["--timeout"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--samples",
                &malformed,
                "--jobs",
                "0",
                "--out",
                out,
            ],
            vec!["--jobs"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--difficulty",
                "hard",
                "--samples",
                &malformed,
            ],
            vec!["hard"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--ids",
                "HumanEval/0,Nope/1",
                "--samples",
                &malformed,
            ],
            vec!["Nope/1"],
        ),
        (
            vec!["eval", "--config", &bad_config],
            vec!["c.toml", "bogus_key"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--judge",
                "apps",
                "--samples",
                &wrong_type,
            ],
            vec!["type.jsonl"],
        ),
        (
            vec!["data", "check", "--data", he, "--time-floor", "2"],
            vec!["--calibrate"],
        ),
        (
            vec![
                "eval",
                "--data",
                he,
                "--python",
                "/nonexistent/python3",
                "--samples",
                &unknown,
                "--skip-invalid",
            ],
            vec!["/nonexistent/python3"],
        ),
    ];
    for (args, needles) in cases {
        let o = codeplan(&args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        for n in needles {
            assert!(
                err.contains(n),
                "{args:?}: error should mention {n:?}:\n{err}"
            );
        }
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
    // --skip-invalid continues and says how many records were skipped and why.
    let samples = write(
        d,
        "mixed.jsonl",
        "{\"problem_id\": \"HumanEval/0\", \"code\": \"x = 1\"}\n{broken\n{\"problem_id\": \"HumanEval/0\", \"code\": 3}\n",
    );
    let o = codeplan(&[
        "eval",
        "--data",
        he,
        "--ids",
        "HumanEval/0",
        "--samples",
        &samples,
        "--skip-invalid",
        "--k",
        "1",
        "--out",
        out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("skipped 2"), "{err}");
    assert!(
        err.contains("mixed.jsonl:2") && err.contains("mixed.jsonl:3"),
        "{err}"
    );
}

#[test]
fn apps_judge_on_assertion_tests_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let samples = write(
        dir.path(),
        "s.jsonl",
        "{\"problem_id\": \"HumanEval/0\", \"code\": \"x = 1\"}\n",
    );
    let o = codeplan(&[
        "eval",
        "--data",
        "data/humaneval/HumanEval.jsonl.gz",
        "--judge",
        "apps",
        "--samples",
        &samples,
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("HumanEval/0") && stderr(&o).contains("--judge strict"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_verb_has_help_with_examples_and_the_untrusted_code_warning() {
    for args in [
        vec!["--help"],
        vec!["eval", "--help"],
        vec!["data", "check", "--help"],
    ] {
        let o = codeplan(&args);
        assert!(o.status.success());
        let text = stdout(&o);
        assert!(text.contains("Examples:"), "{args:?}:\n{text}");
        assert!(
            text.to_lowercase().contains("untrusted") || text.contains("EXECUTES"),
            "{args:?}:\n{text}"
        );
    }
}
