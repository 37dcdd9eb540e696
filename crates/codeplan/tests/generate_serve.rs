//! `codeplan generate` and `codeplan serve` end to end with the real smollm2-135m: samples that
//! `codeplan eval` reads, resumption after a crash, a live server, and clear errors.

mod common;

use std::path::Path;

use common::{chat_once, codeplan, have_smollm2, start_server, text};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn generate_writes_samples_that_eval_reads_and_resumes() {
    if !have_smollm2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("samples.jsonl");
    let out_s = out.to_str().unwrap();
    let args = [
        "generate",
        "--model",
        "smollm2-135m",
        "--data",
        "data/apps/test.jsonl",
        "--limit",
        "2",
        "--n",
        "2",
        "--max-new-tokens",
        "12",
        "--seed",
        "7",
        "--out",
        out_s,
    ];
    let o = codeplan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let first = lines(&out);
    assert_eq!(first.len(), 4);
    for l in &first {
        assert!(l["code"].is_string() && l["completion_tokens"].as_u64().unwrap() <= 12);
        assert!(["stop", "length"].contains(&l["finish_reason"].as_str().unwrap()));
    }
    // A crash mid-write leaves a torn line and a missing problem: the rerun repairs and
    // completes it, and the samples it regenerates are the same (seeded).
    let full = std::fs::read_to_string(&out).unwrap();
    let keep: Vec<&str> = full.lines().take(2).collect();
    std::fs::write(
        &out,
        format!("{}\n{}", keep.join("\n"), "{\"problem_id\": \"tor"),
    )
    .unwrap();
    let o = codeplan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 problem(s) sampled, 1 already done"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(lines(&out), first);
    // And eval judges the file.
    let eval_dir = dir.path().join("eval");
    let o = codeplan(&[
        "eval",
        "--data",
        "data/apps/test.jsonl",
        "--samples",
        out_s,
        "--out",
        eval_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(eval_dir.join("verdicts.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );
}

#[test]
fn long_prompts_are_cut_to_the_budget_and_reported() {
    if !have_smollm2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cut.jsonl");
    let o = codeplan(&[
        "generate",
        "--model",
        "smollm2-135m",
        "--data",
        "data/apps/test.jsonl",
        "--ids",
        "0",
        "--max-prompt-tokens",
        "48",
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 prompt(s) were cut"),
        "{}",
        text(&o.stdout)
    );
    let l = &lines(&out)[0];
    assert_eq!(l["prompt_truncated"], true);
    let tokens = l["prompt_tokens"].as_u64().unwrap();
    assert!((30..=48).contains(&tokens), "{tokens}");
    // A budget too small for even the format's fixed text is an error, not a silent cut.
    let o = codeplan(&[
        "generate",
        "--model",
        "smollm2-135m",
        "--data",
        "data/apps/test.jsonl",
        "--ids",
        "0",
        "--max-prompt-tokens",
        "3",
        "--out",
        dir.path().join("x.jsonl").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("prompt budget of 3"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn generate_with_the_chat_template_extracts_code() {
    if !have_smollm2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("he.jsonl");
    let o = codeplan(&[
        "generate",
        "--model",
        "smollm2-135m",
        "--data",
        "data/humaneval/HumanEval.jsonl.gz",
        "--limit",
        "1",
        "--prompt",
        "chat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "48",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let l = &lines(&out)[0];
    assert_eq!(l["problem_id"], "HumanEval/0");
    let completion = l["completion"].as_str().unwrap();
    let code = l["code"].as_str().unwrap();
    if completion.contains("```") {
        assert!(!code.contains("```"), "code still fenced: {code:?}");
    } else {
        assert_eq!(code, completion);
    }
}

#[test]
fn generate_refuses_bad_settings_before_loading() {
    let cases: &[(&[&str], &str)] = &[
        (&["--n", "0", "--out", "x.jsonl"], "--n must be at least 1"),
        (&["--top-p", "0", "--out", "x.jsonl"], "top_p"),
        (&["--temperature", "-1", "--out", "x.jsonl"], "temperature"),
        (
            &["--max-new-tokens", "0", "--out", "x.jsonl"],
            "--max-new-tokens",
        ),
        (&[], "--out"),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "generate",
            "--model",
            "smollm2-135m",
            "--data",
            "data/apps/test.jsonl",
        ];
        args.extend_from_slice(extra);
        let o = codeplan(&args);
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains(needle),
            "{:?}: {}",
            extra,
            text(&o.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.jsonl");
    let o = codeplan(&[
        "generate",
        "--model",
        "no-such-model",
        "--data",
        "data/apps/test.jsonl",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no-such-model"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !out.exists(),
        "nothing is written when the model cannot load"
    );
    // A file that is not a samples file is not appended to.
    std::fs::write(&out, "not json\n").unwrap();
    if have_smollm2() {
        let o = codeplan(&[
            "generate",
            "--model",
            "smollm2-135m",
            "--data",
            "data/apps/test.jsonl",
            "--limit",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains("s.jsonl:1"), "{}", text(&o.stderr));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "not json\n");
    }
}

#[test]
fn serve_answers_on_loopback() {
    if !have_smollm2() {
        return;
    }
    let (mut child, url) = start_server("smollm2-135m");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let v = chat_once(&url);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(v["object"], "chat.completion");
}

#[test]
fn serve_refuses_a_bad_address() {
    let o = codeplan(&["serve", "--model", "smollm2-135m", "--host", "not an ip"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--host"), "{}", text(&o.stderr));
}

#[test]
fn an_unusable_device_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.jsonl");
    let mut cases = vec![(
        "gpu",
        vec!["--device gpu", "unknown device `gpu`", "cuda:N"],
    )];
    if cfg!(not(feature = "cuda")) {
        cases.push((
            "cuda:1",
            vec!["--device cuda:1", "without CUDA support", "--features cuda"],
        ));
    }
    for (device, needles) in cases {
        let o = codeplan(&[
            "generate",
            "--model",
            "smollm2-135m",
            "--device",
            device,
            "--data",
            "data/apps/test.jsonl",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        let err = text(&o.stderr);
        for needle in needles.iter() {
            assert!(err.contains(needle), "{device}: {err}");
        }
        assert!(!out.exists(), "{device}: nothing is written");
        let o = codeplan(&["serve", "--model", "smollm2-135m", "--device", device]);
        assert!(!o.status.success());
        let err = text(&o.stderr);
        assert!(err.contains(needles[1]), "serve {device}: {err}");
    }
}
