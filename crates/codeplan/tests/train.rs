//! `codeplan train` end to end with the real smollm2-135m: a run killed with SIGKILL and resumed
//! ends with exactly the weights of a run never interrupted; `--inspect`; clear errors.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{codeplan, have_smollm2, repo, text};

/// A short LoRA run; dropout and validation on, so that resuming must restore their randomness.
fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--model",
        "smollm2-135m",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--lora-rank",
        "4",
        "--lora-dropout",
        "0.1",
        "--max-len",
        "96",
        "--batch-size",
        "2",
        "--max-steps",
        "6",
        "--save-every",
        "2",
        "--keep-checkpoints",
        "5",
        "--eval-every",
        "3",
        "--val-fraction",
        "0.05",
        "--val-batches",
        "1",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "2",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

fn trained(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let tensors = candle_core::safetensors::load(
        dir.join("checkpoints/step-00000006/trained.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut out: Vec<(String, Vec<f32>)> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    if !have_smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let out = codeplan(
        &train_args(&straight)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Trained 6 updates"),
        "{}",
        text(&out.stdout)
    );
    for f in ["metrics.jsonl", "loss.svg", "run.json"] {
        assert!(straight.join(f).exists(), "{f} missing");
    }

    // Kill a second run with SIGKILL once it has written the checkpoint of update 2.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(train_args(&killed))
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed.join("checkpoints/step-00000002/state.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("checkpoints/step-00000006").exists());

    // Without --resume the folder is refused; with it, the run completes.
    let again = codeplan(
        &train_args(&killed)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--resume"),
        "{}",
        text(&again.stderr)
    );
    let mut args = train_args(&killed);
    args.push("--resume".into());
    let resumed = codeplan(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(
        text(&resumed.stderr).contains("resumed after update"),
        "{}",
        text(&resumed.stderr)
    );

    // Same tensors, bit for bit (same thread count, same deterministic kernels).
    let (a, b) = (trained(&straight), trained(&killed));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resuming");
    }
}

#[test]
fn inspect_shows_the_trained_tokens_and_lengths() {
    if !have_smollm2() {
        return;
    }
    let out = codeplan(&[
        "train",
        "--model",
        "smollm2-135m",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--max-len",
        "256",
        "--inspect",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[GEN_CODE]\nQUESTION:\n"), "{stdout}");
    assert!(stdout.contains("ANSWER:\n⟦"), "{stdout}");
    assert!(
        stdout.contains("|>⟧"),
        "the end-of-text token must be trained: {stdout}"
    );
    assert!(
        stdout.contains("median") && stdout.contains("truncated"),
        "{stdout}"
    );
}

#[test]
fn bad_settings_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["--weights", "code=x"], "`x` is not a number"),
        (&["--weights", "tests=1"], "unknown task `tests`"),
        (
            &["--lora-targets", "q_proj,qkv"],
            "unknown LoRA target module `qkv`",
        ),
        (&["--tasks", "code,plan"], "--plans"),
        (&["--lr", "0"], "lr must be a positive number"),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "train",
            "--model",
            "tests/does-not-matter.gguf",
            "--data",
            "data/mbpp/mbpp_sanitized.jsonl",
            "--tasks",
            "code",
        ];
        args.extend_from_slice(extra);
        let out = codeplan(&args);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains(expected),
            "{extra:?}: expected `{expected}` in: {err}"
        );
    }
}

#[test]
fn pass_at_one_is_logged_during_training() {
    if !have_smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = codeplan(&[
        "train",
        "--model",
        "smollm2-135m",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--max-len",
        "160",
        "--max-steps",
        "1",
        "--val-fraction",
        "0.1",
        "--eval-pass-every",
        "1",
        "--eval-problems",
        "2",
        "--eval-max-new-tokens",
        "24",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    let eval: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v.get("eval/pass@1").is_some())
        .expect("an eval/pass@1 record");
    let pass = eval["eval/pass@1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&pass));
    assert_eq!(eval["eval/problems"].as_f64(), Some(2.0));
    let verdicts =
        std::fs::read_to_string(out_dir.join("eval/step-00000001/verdicts.jsonl")).unwrap();
    assert_eq!(
        verdicts.lines().count(),
        2,
        "one judged sample per held-out problem"
    );
}

#[test]
fn settings_come_from_the_config_file_and_flags_win() {
    if !have_smollm2() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("train.toml");
    std::fs::write(
        &toml,
        "model = \"smollm2-135m\"\ndata = [\"data/mbpp/mbpp_sanitized.jsonl\"]\ntasks = [\"code\"]\n\
         max_len = 200\nweights = { code = 1.0, plan = 0.5 }\nadamw = { weight_decay = 0.05 }\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            toml.to_str().unwrap(),
            "--inspect",
            "0",
        ];
        args.extend_from_slice(extra);
        let out = codeplan(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(run(&[]).contains("max length 200 tokens"));
    assert!(run(&["--max-len", "256"]).contains("max length 256 tokens"));
}
