//! `codeplan train --export` end to end with the real smollm2-135m: a short LoRA run writes the
//! PEFT adapter, the merged Hugging Face folder and a q8_0 GGUF, and `codeplan generate`
//! and `codeplan serve` run from both merged models.

mod common;

use std::path::Path;

use common::{chat_once, codeplan, have_smollm2, start_server, text};
use serde_json::Value;

/// One greedy sample of the first MBPP problem from `model`; returns the samples line.
fn generate_one(model: &Path, samples: &Path) -> Value {
    let o = codeplan(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--limit",
        "1",
        "--n",
        "1",
        "--max-new-tokens",
        "16",
        "--temperature",
        "0",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "generate from {} failed: {}",
        model.display(),
        text(&o.stderr)
    );
    let content = std::fs::read_to_string(samples).unwrap();
    let lines: Vec<Value> = content
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{content}");
    lines.into_iter().next().unwrap()
}

/// `codeplan serve` loads the exported model and answers a chat completion.
fn serve_one(model: &Path) {
    let (mut child, url) = start_server(model.to_str().unwrap());
    let answer = chat_once(&url);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
}

#[test]
fn train_exports_models_that_generate_and_serve() {
    if !have_smollm2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = codeplan(&[
        "train",
        "--model",
        "smollm2-135m",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--lora-rank",
        "4",
        "--max-len",
        "128",
        "--max-steps",
        "3",
        "--export",
        "peft,hf,gguf-q8_0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "train failed: {}", text(&o.stderr));
    let stdout = text(&o.stdout);
    for name in ["peft", "hf", "gguf_q8_0"] {
        assert!(stdout.contains(&format!("Exported {name}: ")), "{stdout}");
    }
    for file in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "model/tokenizer_config.json",
        "model/generation_config.json",
        "model-q8_0.gguf",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(
        !out.join("model-f16.gguf").exists(),
        "f16 was not asked for"
    );
    let adapter: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(adapter["r"], 4);
    assert_eq!(adapter["base_model_name_or_path"], "smollm2-135m");
    // No temporary export is left behind.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".tmp-") && !name.starts_with(".old-"),
            "{name}"
        );
    }

    for (model, samples) in [
        (out.join("model"), dir.path().join("hf.jsonl")),
        (out.join("model-q8_0.gguf"), dir.path().join("gguf.jsonl")),
    ] {
        let line = generate_one(&model, &samples);
        assert!(!line["problem_id"].is_null(), "{line}");
        assert!(line["code"].is_string(), "no generated code in {line}");
        serve_one(&model);
    }

    // A finished run exports again in another format without training.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let o = codeplan(&[
        "train",
        "--model",
        "smollm2-135m",
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--lora-rank",
        "4",
        "--max-len",
        "128",
        "--max-steps",
        "3",
        "--export",
        "gguf-f16",
        "--resume",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "re-export failed: {}", text(&o.stderr));
    assert!(out.join("model-f16.gguf").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
        metrics,
        "no update ran"
    );

    // An HF-folder model cannot be exported to GGUF: refused before any training.
    let o = codeplan(&[
        "train",
        "--model",
        out.join("model").to_str().unwrap(),
        "--data",
        "data/mbpp/mbpp_sanitized.jsonl",
        "--tasks",
        "code",
        "--export",
        "gguf-f16",
        "--out",
        dir.path().join("again").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("GGUF export needs a GGUF source model"),
        "{err}"
    );
    assert!(!dir.path().join("again").exists());
}
