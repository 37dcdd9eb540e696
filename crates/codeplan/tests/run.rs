//! `codeplan run`: the whole experiment on the smallest setting (smollm2-135m as teacher and
//! student, a few MBPP problems, two updates), killed between stages and resumed, then rerun
//! from its caches; and experiment files with mistakes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{codeplan, have_smollm2, repo, text};
use serde_json::Value;

const TINY: &str = "crates/codeplan/tests/data/run-tiny.toml";

fn run_args(out: &Path, cache: &Path) -> Vec<String> {
    vec![
        "run".into(),
        TINY.into(),
        "--out".into(),
        out.display().to_string(),
        // The teacher's shared cache is this test's own, so the first run really asks.
        "--set".into(),
        format!(
            "teacher.cache_dir={}",
            toml_str(&cache.display().to_string())
        ),
    ]
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn stage_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("stages"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The run's stage folders of one kind (`distill`, `train`, `generate`, `eval`), sorted.
fn stages_of(out: &Path, kind: &str) -> Vec<PathBuf> {
    stage_dirs(out)
        .into_iter()
        .filter(|d| d.file_name().unwrap().to_str().unwrap().starts_with(kind))
        .collect()
}

fn finished(out: &Path, kind: &str) -> usize {
    stages_of(out, kind)
        .iter()
        .filter(|d| d.join("stage.json").exists())
        .count()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jsonl(path: &Path) -> Vec<Value> {
    read(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every stage's record, by folder name.
fn records(out: &Path) -> BTreeMap<String, String> {
    stage_dirs(out)
        .iter()
        .map(|d| {
            (
                d.file_name().unwrap().to_string_lossy().into_owned(),
                read(&d.join("stage.json")),
            )
        })
        .collect()
}

#[test]
fn the_experiment_runs_resumes_after_a_kill_and_reruns_from_cache() {
    if !have_smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cache = tmp.path().join("teacher-cache");
    let args = run_args(&out, &cache);

    // 1. Start the run and kill it (SIGKILL) once the teacher's stage has finished.
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(&args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("first.log")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while finished(&out, "distill") == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the teacher's stage finished: {}",
            read(&tmp.path().join("first.log"))
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "distill took over 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("report.json").exists(),
        "killed before the end, yet a report exists"
    );
    let distill_dir = stages_of(&out, "distill").remove(0);
    let ledger_before = read(&distill_dir.join("ledger.jsonl"));
    let record_before = read(&distill_dir.join("stage.json"));

    // 2. Rerun: the finished stage is reused (no teacher request), the rest runs.
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = codeplan(&argv);
    let stderr = text(&second.stderr);
    assert!(
        second.status.success(),
        "{stderr}\n{}",
        text(&second.stdout)
    );
    assert!(
        stderr.contains("distill (codeplan, plan-then-code): cached"),
        "{stderr}"
    );
    assert_eq!(read(&distill_dir.join("ledger.jsonl")), ledger_before);
    assert_eq!(read(&distill_dir.join("stage.json")), record_before);
    // Three variants: one teacher stage; plan-then-code shares CodePLAN's training and has
    // its own sampling and judging.
    assert_eq!(finished(&out, "distill"), 1);
    assert_eq!(finished(&out, "train"), 2);
    for kind in ["generate", "eval"] {
        assert_eq!(finished(&out, kind), 3, "{kind} stages");
    }
    for file in [
        "report.json",
        "report.md",
        "report.html",
        "manifest.json",
        "experiment.toml",
    ] {
        assert!(out.join(file).exists(), "{file} is missing");
    }
    let manifest: Value = serde_json::from_str(&read(&out.join("manifest.json"))).unwrap();
    let stages = manifest["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 9);
    assert!(stages
        .iter()
        .all(|s| s["wall_seconds"].as_f64().unwrap() > 0.0));

    // The report's numbers are the per-sample verdicts' numbers.
    check_report_against_verdicts(&out, &manifest);

    // Decoding was identical across variants: the same generate settings but for the
    // plan-then-code variant's inference mode; its samples carry the plans they follow.
    let mut generate_configs = Vec::new();
    for d in stages_of(&out, "generate") {
        let mut t: toml::Table = toml::from_str(&read(&d.join("config.toml"))).unwrap();
        t.remove("model");
        t.remove("out");
        let prompt = t.remove("prompt");
        let samples = jsonl(&d.join("samples.jsonl"));
        assert_eq!(samples.len(), 6, "3 problems × 2 samples");
        let with_plan = samples.iter().filter(|s| s["plan"].is_string()).count();
        if let Some(prompt) = prompt {
            assert_eq!(prompt.as_str(), Some("plan-then-code"));
            assert_eq!(with_plan, 6, "every plan-then-code sample has its plan");
        } else {
            assert_eq!(with_plan, 0);
        }
        generate_configs.push(toml::to_string(&t).unwrap());
    }
    assert_eq!(generate_configs.len(), 3);
    assert!(generate_configs.iter().all(|c| *c == generate_configs[0]));

    // 3. A third run finds everything done: no teacher request, no training step.
    let records_before = records(&out);
    let metrics_before: Vec<String> = stage_dirs(&out)
        .iter()
        .filter(|d| d.join("metrics.jsonl").exists())
        .map(|d| read(&d.join("metrics.jsonl")))
        .collect();
    let third = codeplan(&argv);
    let stderr = text(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert_eq!(stderr.matches(": cached, ").count(), 9, "{stderr}");
    assert!(!stderr.contains("running →"), "{stderr}");
    assert_eq!(records(&out), records_before);
    assert_eq!(read(&distill_dir.join("ledger.jsonl")), ledger_before);
    let metrics_after: Vec<String> = stage_dirs(&out)
        .iter()
        .filter(|d| d.join("metrics.jsonl").exists())
        .map(|d| read(&d.join("metrics.jsonl")))
        .collect();
    assert_eq!(metrics_after, metrics_before);
    let dry = codeplan(&[&argv[..], &["--dry-run"]].concat());
    assert!(
        text(&dry.stdout).contains("Nothing to do: every stage is cached."),
        "{}",
        text(&dry.stdout)
    );

    // 4. Changing a student setting retrains and resamples but does not ask the teacher.
    let mut changed = argv.clone();
    changed.extend(["--set", "student.lr=0.0001", "--dry-run"]);
    let dry = codeplan(&changed);
    let stdout = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let status_of = |kind: &str| -> Vec<&str> {
        // Rows of the plan table: stage, 12-digit key, status, variants.
        stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w.len() >= 3 && w[0] == kind && w[1].len() == 12)
            .filter(|w| w[1].chars().all(|c| c.is_ascii_hexdigit()))
            .map(|w| w[2])
            .collect()
    };
    assert_eq!(status_of("distill"), ["cached"], "{stdout}");
    assert_eq!(status_of("train"), ["to", "to"], "{stdout}");
    assert_eq!(status_of("generate").len(), 3, "{stdout}");

    // 5. A sampling stage cut short resumes, and the estimate counts only what it lacks
    // (a torn last line is not a sample).
    let generate_dir = stages_of(&out, "generate").remove(0);
    std::fs::remove_file(generate_dir.join("stage.json")).unwrap();
    let samples = read(&generate_dir.join("samples.jsonl"));
    let kept: String = samples.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(
        generate_dir.join("samples.jsonl"),
        kept + "{\"problem_id\":",
    )
    .unwrap();
    let dry = codeplan(&[&argv[..], &["--dry-run"]].concat());
    let stdout = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(stdout.contains(" resume "), "{stdout}");
    assert!(
        stdout.contains("3 problems × 2 samples (4 already saved): ≤ "),
        "{stdout}"
    );
}

/// Recomputes pass@1 of each variant from its eval stage's verdicts and compares with the
/// report's figures.
fn check_report_against_verdicts(out: &Path, manifest: &Value) {
    let report: Value = serde_json::from_str(&read(&out.join("report.json"))).unwrap();
    for (name, variant) in manifest["variants"].as_object().unwrap() {
        let eval_key = variant["stages"]["eval"].as_str().unwrap();
        let dir = out.join("stages").join(format!("eval-{}", &eval_key[..12]));
        let mut per_problem: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for v in jsonl(&dir.join("verdicts.jsonl")) {
            let e = per_problem
                .entry(v["problem_id"].as_str().unwrap().to_owned())
                .or_default();
            e.0 += 1;
            e.1 += usize::from(v["passed"].as_bool().unwrap());
        }
        let pass1 = per_problem
            .values()
            .map(|(n, c)| *c as f64 / *n as f64)
            .sum::<f64>()
            / per_problem.len() as f64;
        let reported = report_pass1(&report, name);
        assert!(
            (reported - pass1).abs() < 1e-9,
            "{name}: report says pass@1 {reported}, verdicts say {pass1}"
        );
    }
}

fn report_pass1(report: &Value, variant: &str) -> f64 {
    let v = report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == variant)
        .unwrap_or_else(|| panic!("variant {variant} is not in the report"));
    v["overall"]["pass_at_k"]["1"].as_f64().unwrap()
}

#[test]
fn a_malformed_experiment_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = read(&repo().join(TINY));
    let cases: &[(&str, String, &[&str])] = &[
        ("top-level typo", format!("nmae = \"x\"\n{base}"), &["nmae"]),
        (
            "student typo",
            base.replace("max_steps = 2", "max_step = 2"),
            &["[student]", "max_step"],
        ),
        (
            "teacher typo",
            base.replace("plans_per_problem = 1", "plans_per_problme = 1"),
            &["[teacher]", "plans_per_problme"],
        ),
        (
            "decoding set per variant",
            base.replace(
                "name = \"codeplan\"",
                "name = \"codeplan\"\ngenerate = { n = 5 }",
            ),
            &["generate"],
        ),
        (
            "a key the run owns",
            base.replace("[student]", "[student]\nout = \"x\""),
            &["[student]", "`out`"],
        ),
        (
            "two baselines",
            base.replace(
                "name = \"codeplan\"",
                "name = \"codeplan\"\nbaseline = true",
            ),
            &["exactly one"],
        ),
        (
            "unknown ablation",
            base.replace("ablation = \"code-only\"", "ablation = \"no-teacher\""),
            &["no-teacher"],
        ),
        (
            "missing data file",
            base.replace(
                "data = [\"data/mbpp/mbpp_sanitized.jsonl\"]\nids = [\"MbppEval/11\"",
                "data = [\"data/nope.jsonl\"]\nids = [\"MbppEval/11\"",
            ),
            &["[eval_data]", "data/nope.jsonl"],
        ),
        ("not TOML", "name = ".to_owned(), &["exp.toml"]),
    ];
    for (what, body, needles) in cases {
        let path = tmp.path().join("exp.toml");
        std::fs::write(&path, body).unwrap();
        let out_dir = tmp.path().join("out");
        let o = codeplan(&[
            "run",
            path.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--dry-run",
        ]);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{what}: accepted\n{}", text(&o.stdout));
        for n in *needles {
            assert!(err.contains(n), "{what}: error lacks `{n}`: {err}");
        }
        assert!(
            !out_dir.join("stages").exists(),
            "{what}: stages were started"
        );
    }
    let o = codeplan(&["run", TINY, "--set", "student.max_steps"]);
    assert!(text(&o.stderr).contains("--set student.max_steps: no `=`"));
    let o = codeplan(&["run", "no/such/experiment.toml"]);
    assert!(text(&o.stderr).contains("no/such/experiment.toml"));
}
