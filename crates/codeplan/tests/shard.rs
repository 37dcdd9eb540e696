//! Scale-out: `generate`, `eval` and `distill` run as `--shard I/N` and joined by `codeplan
//! merge` write what one unsharded run writes (byte for byte, apart from the measured times
//! listed in the README); and every broken set of shards is refused with the shard named.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use common::{codeplan, have_smollm2, repo, start_server, text};
use serde_json::Value;

/// Runs codeplan with owned arguments.
fn run(args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    codeplan(&refs)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

fn fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "should fail: {}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains(needle),
        "expected {needle:?} in: {}",
        text(&o.stderr)
    );
}

fn args(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap()
}

/// Merges `shards` into `out` and checks it succeeded.
fn merge(shards: &[&Path], out: &Path) -> String {
    let mut a: Vec<String> = vec!["merge".into()];
    a.extend(shards.iter().map(|s| p(s).to_owned()));
    a.extend(["--out".into(), p(out).to_owned()]);
    ok(&run(&a))
}

/// Samples for every bundled APPS test problem: two reference solutions where it has them,
/// and one wrong program each (a mix of passes and failures over two difficulty levels).
fn apps_samples(path: &Path) {
    let text = std::fs::read_to_string(repo().join("data/apps/test.jsonl")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let id = r["problem_id"].clone();
        let sols: Vec<String> = match r["solutions"].as_str() {
            Some(s) if !s.is_empty() => serde_json::from_str(s).unwrap(),
            _ => vec![],
        };
        for (i, code) in sols.iter().take(2).enumerate() {
            let l = serde_json::json!({"problem_id": id, "sample_idx": i, "code": code});
            out += &format!("{l}\n");
        }
        let wrong = serde_json::json!({"problem_id": id, "sample_idx": 2, "code": "print(1)"});
        out += &format!("{wrong}\n");
    }
    std::fs::write(path, out).unwrap();
}

/// A verdicts file without what is measured (times, memory): the rest must be identical.
fn verdicts_without_measurements(path: &Path) -> Vec<Value> {
    String::from_utf8(read(path))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_s");
            for t in v["tests"].as_array_mut().unwrap() {
                t.as_object_mut().unwrap().remove("time_s");
                t.as_object_mut().unwrap().remove("memory_kb");
            }
            v
        })
        .collect()
}

#[test]
fn eval_shards_merge_into_the_unsharded_verdicts_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    apps_samples(&samples);
    let base = [
        "eval",
        "--data",
        "data/apps/test.jsonl",
        "--samples",
        p(&samples),
        "--judge",
        "apps",
        "--k",
        "1,2,3",
        "--jobs",
        "2",
    ];
    let whole = dir.path().join("whole");
    ok(&run(&args(&base, &["--out", p(&whole)])));
    assert!(
        !whole.join("shard.json").exists(),
        "an unsharded run is no shard"
    );
    let shards: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("e{i}"))).collect();
    // Shard 2 reads only its own problems' samples (as after `generate --shard 2/3`); the
    // others read the whole file.
    let own = dir.path().join("samples-2.jsonl");
    let whole_text = String::from_utf8(read(&samples)).unwrap();
    let mine: String = whole_text
        .lines()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["problem_id"] == 2 || v["problem_id"] == 4787
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(mine.lines().count(), 4);
    std::fs::write(&own, mine).unwrap();
    for (i, s) in shards.iter().enumerate() {
        let shard = format!("{i}/3");
        let mut a = args(&base, &["--out", p(s), "--shard", &shard]);
        if i == 2 {
            a[4] = p(&own).to_owned();
        }
        ok(&run(&a));
        let record = json(&s.join("shard.json"));
        assert_eq!(record["kind"], "eval");
        assert_eq!(record["shard"]["index"], i);
        assert_eq!(record["selection"].as_array().unwrap().len(), 8);
    }
    // Round-robin: shard 1 of 3 has the problems at positions 1, 4, 7.
    let ids: Vec<String> = verdicts_without_measurements(&shards[1].join("verdicts.jsonl"))
        .iter()
        .map(|v| v["problem_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["1", "1", "1", "4", "4", "4", "4820"]);

    let merged = dir.path().join("merged");
    let order = [&shards[2], &shards[0], &shards[1]].map(PathBuf::as_path);
    let printed = merge(&order, &merged);
    assert!(
        printed.contains("Merged 3 eval shard(s) (8 problem(s))"),
        "{printed}"
    );
    let (a, b) = (
        verdicts_without_measurements(&whole.join("verdicts.jsonl")),
        verdicts_without_measurements(&merged.join("verdicts.jsonl")),
    );
    assert_eq!(a.len(), 18);
    assert_eq!(a, b, "merged verdicts differ from the unsharded run's");
    // Every number of the summary is the same (wall time excepted); the Markdown is identical.
    let (mut sa, mut sb) = (
        json(&whole.join("summary.json")),
        json(&merged.join("summary.json")),
    );
    for s in [&mut sa, &mut sb] {
        s.as_object_mut().unwrap().remove("wall_s");
    }
    assert_eq!(sa, sb);
    assert_eq!(sa["metrics"]["overall"]["problems"], 8);
    assert_eq!(
        read(&whole.join("summary.md")),
        read(&merged.join("summary.md"))
    );
    // A rerun of the whole writes its verdicts in the same order (not completion order).
    let again = dir.path().join("again");
    ok(&run(&args(&base, &["--out", p(&again)])));
    assert_eq!(
        verdicts_without_measurements(&again.join("verdicts.jsonl")),
        a
    );

    // Broken sets are refused, naming the shard; nothing is written.
    let refused = dir.path().join("refused");
    let merge_err = |given: &[&Path], needle: &str| {
        let mut a: Vec<String> = vec!["merge".into()];
        a.extend(given.iter().map(|s| p(s).to_owned()));
        a.extend(["--out".into(), p(&refused).to_owned()]);
        fails_with(&run(&a), needle);
        assert!(!refused.exists());
    };
    merge_err(&[&shards[0], &shards[2]], "shard 1/3 is missing");
    let copy = dir.path().join("e0-copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["shard.json", "verdicts.jsonl", "summary.json"] {
        std::fs::copy(shards[0].join(f), copy.join(f)).unwrap();
    }
    merge_err(
        &[&shards[0], &shards[1], &shards[2], &copy],
        "shard 0/3 is given twice",
    );
    merge_err(&[&shards[0], &shards[1], &whole], "no shard record");
    // Shard 1 judged again with another time limit: not the same run.
    ok(&run(&args(
        &base,
        &["--out", p(&shards[1]), "--shard", "1/3", "--timeout", "2"],
    )));
    let o = codeplan(&[
        "merge",
        p(&shards[0]),
        p(&shards[1]),
        p(&shards[2]),
        "--out",
        p(&refused),
    ]);
    for needle in [
        "shard 1/3 (",
        "was made with other settings than shard 0/3",
        "options.limits.test_timeout_s: 4.0 vs 2.0",
    ] {
        fails_with(&o, needle);
    }
    // Shards of another selection.
    let other = dir.path().join("other");
    ok(&run(&args(
        &[
            "eval",
            "--data",
            "data/apps/test.jsonl",
            "--limit",
            "5",
            "--samples",
            p(&samples),
            "--judge",
            "apps",
            "--k",
            "1,2,3",
            "--jobs",
            "2",
            "--skip-invalid",
        ],
        &["--out", p(&other), "--shard", "1/3"],
    )));
    merge_err(
        &[&shards[0], &other, &shards[2]],
        "selected other problems than shard 0/3",
    );
}

#[test]
fn bad_shard_values_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    for (verb, value, needle) in [
        (
            "generate",
            "2/2",
            "--shard 2/2: index must be below the count",
        ),
        ("eval", "3/2", "--shard 3/2: index must be below the count"),
        ("distill", "x", "--shard x: expected INDEX/COUNT"),
        ("eval", "0/0", "--shard 0/0: the count must be at least 1"),
    ] {
        let mut a = vec![verb, "--data", "data/apps/test.jsonl", "--shard", value];
        a.extend(match verb {
            "generate" => vec!["--model", "smollm2-135m", "--out", p(&out)],
            "eval" => vec!["--samples", "no-such-file.jsonl", "--out", p(&out)],
            _ => vec![
                "--teacher-url",
                "http://127.0.0.1:9/v1",
                "--teacher-model",
                "m",
                "--out",
                p(&out),
            ],
        });
        fails_with(&codeplan(&a), needle);
    }
    fails_with(
        &codeplan(&["merge", "--out", p(&out)]),
        "required arguments were not provided",
    );
}

fn generate_args(out: &Path, shard: Option<&str>) -> Vec<String> {
    let mut a = args(
        &[
            "generate",
            "--model",
            "smollm2-135m",
            "--data",
            "data/apps/test.jsonl",
            "--ids",
            "0,1,2,4787,4790",
            "--n",
            "2",
            "--temperature",
            "0.8",
            "--seed",
            "7",
            "--max-new-tokens",
            "12",
            "--out",
            p(out),
        ],
        &[],
    );
    if let Some(s) = shard {
        a.extend(["--shard".into(), s.into()]);
    }
    a
}

#[test]
fn generate_shards_merge_byte_for_byte() {
    if !have_smollm2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    ok(&run(&generate_args(&whole, None)));
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("samples-{i}.jsonl")))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        ok(&run(&generate_args(part, Some(&format!("{i}/2")))));
        let record = json(&dir.path().join(format!("samples-{i}.jsonl.shard.json")));
        assert_eq!(record["kind"], "generate");
        assert_eq!(record["settings"]["n"], 2);
    }
    let merged = dir.path().join("merged.jsonl");
    merge(&[&parts[1], &parts[0]], &merged);
    let bytes = read(&whole);
    assert_eq!(String::from_utf8_lossy(&bytes).lines().count(), 10);
    assert!(
        bytes == read(&merged),
        "merged samples differ from the unsharded run's"
    );

    // A shard cut short (its last problem lost) is refused, naming the file and problem.
    let text = String::from_utf8(read(&parts[0])).unwrap();
    let kept: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&parts[0], kept).unwrap();
    let o = codeplan(&["merge", p(&parts[0]), p(&parts[1]), "--out", p(&merged)]);
    fails_with(&o, "problem 4790 has 0 of 2 samples (shard 0/2)");
    // --out may not be one of the shards.
    let o = codeplan(&["merge", p(&parts[0]), p(&parts[1]), "--out", p(&parts[1])]);
    fails_with(&o, "is one of the shards");
    // A shard made with another seed is not part of the same run.
    let mut other = generate_args(&parts[0], Some("0/2"));
    std::fs::remove_file(&parts[0]).unwrap();
    let seed = other.iter().position(|a| a == "--seed").unwrap();
    other[seed + 1] = "8".into();
    ok(&run(&other));
    let o = codeplan(&["merge", p(&parts[0]), p(&parts[1]), "--out", p(&merged)]);
    fails_with(&o, "seed: 8 vs 7");
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn distill_args(url: &str, out: &Path, shard: Option<&str>) -> Vec<String> {
    let mut a = args(
        &[
            "distill",
            "--data",
            "data/apps/train.jsonl",
            "--ids",
            "17,60,2004",
            "--teacher-url",
            url,
            "--teacher-model",
            "smollm2-135m",
            "--plans-per-problem",
            "2",
            "--max-tokens",
            "64",
            "--code-max-tokens",
            "24",
            "--templates",
            "crates/codeplan/tests/data/short-templates.toml",
            "--when-none-pass",
            "unvalidated",
            "--concurrency",
            "1",
            "--no-cache",
            "--out",
            p(out),
        ],
        &[],
    );
    if let Some(s) = shard {
        a.extend(["--shard".into(), s.into()]);
    }
    a
}

#[test]
fn distill_shards_merge_into_the_unsharded_plans() {
    if !have_smollm2() {
        return;
    }
    let (child, base) = start_server("smollm2-135m");
    let _server = Server(child);
    let url = format!("{base}/v1");
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    ok(&run(&distill_args(&url, &whole, None)));
    let parts: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("d{i}"))).collect();
    for (i, part) in parts.iter().enumerate() {
        ok(&run(&distill_args(&url, part, Some(&format!("{i}/2")))));
    }
    let merged = dir.path().join("merged");
    merge(&[&parts[0], &parts[1]], &merged);
    for file in [
        "plans.jsonl",
        "candidates.jsonl",
        "summary.json",
        "summary.md",
    ] {
        assert!(
            read(&whole.join(file)) == read(&merged.join(file)),
            "{file} differs from the unsharded run's"
        );
    }
    assert_eq!(
        String::from_utf8(read(&whole.join("candidates.jsonl")))
            .unwrap()
            .lines()
            .count(),
        6
    );
    // Ledgers are concatenated: the same answers, each once.
    let keys = |dir: &Path| {
        let mut k: Vec<String> = String::from_utf8(read(&dir.join("ledger.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&whole), keys(&merged));
    assert_eq!(json(&merged.join("run.json"))["merged_shards"], 2);
}
