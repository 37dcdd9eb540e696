//! Exports of the real smollm2-135m: the Hugging Face folder and the GGUF files load in
//! codeplan's runtime and compute what the trained model computes, with the source's tokenizer
//! and chat template; a Hugging Face folder is itself a source that exports again.

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use codeplan_model::chat::ChatMessage;
use codeplan_model::model::Model;
use codeplan_model::{Decoder, Precision, Segment};
use codeplan_train::base::BaseWeights;
use codeplan_train::export::{write_exports, ExportFormat, ExportReport};
use codeplan_train::lora::LoraTarget;
use codeplan_train::model::{Mode, TrainableModel};
use common::{lora, max_diff, perturb_adapters, values};

/// smollm2-135m with rank-4 adapters on every layer, perturbed so that merging matters.
fn trained_smollm2(path: &Path) -> TrainableModel {
    let base = BaseWeights::load(path).unwrap();
    let model = TrainableModel::new(&base, lora(4, &LoraTarget::ALL), 11).unwrap();
    perturb_adapters(&model, 0.06);
    model
}

/// Next-token logits of every position of `ids` from the runtime, one token at a time.
fn runtime_logits(d: &Decoder, ids: &[u32]) -> Tensor {
    let mut cache = d.new_cache();
    let rows: Vec<Tensor> = ids
        .iter()
        .map(|&id| {
            d.forward(&mut [Segment {
                tokens: &[id],
                cache: &mut cache,
            }])
            .unwrap()
        })
        .collect();
    Tensor::cat(&rows, 0).unwrap()
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// `n` greedy tokens after `prompt` from the runtime.
fn runtime_greedy(d: &Decoder, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = d.new_cache();
    let mut next = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let logits = d
            .forward(&mut [Segment {
                tokens: &next,
                cache: &mut cache,
            }])
            .unwrap();
        let t = argmax(&values(&logits));
        out.push(t);
        next = vec![t];
    }
    out
}

/// `n` greedy tokens after `prompt` from the trainable model (no cache: recomputes each step).
fn trainable_greedy(m: &TrainableModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let logits = m.logits(&ids).unwrap();
        let last = logits.get(ids.len() - 1).unwrap();
        ids.push(argmax(&values(&last)));
    }
    ids[prompt.len()..].to_vec()
}

fn chat_prompt(model: &Model) -> String {
    model
        .render_chat(&[ChatMessage::new(
            "user",
            "Write a Python function that returns the sum of a list.",
        )])
        .unwrap()
}

#[test]
fn hf_folder_loads_in_the_runtime_with_the_trained_logits_and_tokenizer() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let model = trained_smollm2(&path);
    let out = tempfile::tempdir().unwrap();
    let report = write_exports(
        &model,
        &path,
        "smollm2-135m",
        &[ExportFormat::Hf],
        out.path(),
    )
    .unwrap();
    let dir = out.path().join("model");
    assert_eq!(
        report,
        ExportReport {
            written: vec![(ExportFormat::Hf, dir.clone())],
            skipped: vec![]
        }
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["architectures"],
        serde_json::json!(["LlamaForCausalLM"])
    );
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(config["rope_theta"], 100000.0);
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["max_position_embeddings"], 8192);
    assert_eq!(config["torch_dtype"], "float32");
    let weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(!weights.contains_key("lm_head.weight"));
    assert_eq!(weights.len(), 2 + 30 * 9);

    let source = Model::load("source", &path, Precision::F32).unwrap();
    let hf = Model::load("export", &dir, Precision::F32).unwrap();
    let prompt = chat_prompt(&source);
    assert!(prompt.contains("<|im_start|>user"), "{prompt}");
    assert_eq!(
        chat_prompt(&hf),
        prompt,
        "the chat template renders the same"
    );
    for text in [
        prompt.as_str(),
        "def add(a, b):\n    return a + b\n",
        "  Ünïcödé — 日本語 tabs\tand 1234567 digits!!",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n",
    ] {
        assert_eq!(
            hf.encode_prompt(text).unwrap(),
            source.encode_prompt(text).unwrap(),
            "token ids of {text:?}"
        );
    }
    let (a, b) = (source.tokenizer(), hf.tokenizer());
    assert_eq!(
        (a.bos_id(), a.eos_id(), a.stop_ids()),
        (b.bos_id(), b.eos_id(), b.stop_ids())
    );
    assert_eq!(a.add_bos_by_default(), b.add_bos_by_default());

    let ids = source.encode_prompt(&prompt).unwrap();
    let ids = &ids[..ids.len().min(32)];
    let ours = model.logits(ids).unwrap();
    let theirs = runtime_logits(hf.decoder(), ids);
    let diff = max_diff(&ours, &theirs);
    eprintln!("max |Δlogit| trainable (LoRA) vs exported HF folder in the runtime: {diff}");
    // Summation order alone moves these f32 logits by up to ~2e-4 (the unmerged base model,
    // trainer vs runtime, differs by 1.4e-4 over 24 tokens); a wrong or missing merge moves
    // them by more than 1e-2 (checked below).
    assert!(
        diff < 5e-4,
        "max |Δlogit| trainable vs exported HF folder: {diff}"
    );
    let base = runtime_logits(source.decoder(), ids);
    assert!(
        max_diff(&base, &theirs) > 1e-2,
        "the adapters should change the logits, or this test checks nothing"
    );
    drop((model, source, hf));

    // The exported folder is a source in its own right: trained from it, its text side is
    // copied unchanged and its weights go across as they are.
    let again = BaseWeights::load(&dir).unwrap();
    assert!(again.tied_embeddings);
    let full = TrainableModel::new(&again, Mode::Full, 0).unwrap();
    drop(again);
    let out2 = tempfile::tempdir().unwrap();
    write_exports(&full, &dir, "first", &[ExportFormat::Hf], out2.path()).unwrap();
    let dir2 = out2.path().join("model");
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        let (a, b) = (
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(dir2.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs after a second export");
    }
    let hf2 = Model::load("again", &dir2, Precision::F32).unwrap();
    assert_eq!(max_diff(&runtime_logits(hf2.decoder(), ids), &theirs), 0.0);
}

fn gguf_header(path: &Path) -> gguf_file::Content {
    let mut f = std::fs::File::open(path).unwrap();
    gguf_file::Content::read(&mut f).unwrap()
}

#[test]
fn gguf_exports_load_and_follow_the_merged_model() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let model = trained_smollm2(&path);
    let out = tempfile::tempdir().unwrap();
    let formats = [ExportFormat::GgufQ8_0, ExportFormat::GgufF16];
    let report = write_exports(&model, &path, "smollm2-135m", &formats, out.path()).unwrap();
    let f16 = out.path().join("model-f16.gguf");
    let q8 = out.path().join("model-q8_0.gguf");
    assert_eq!(
        report.written,
        vec![
            (ExportFormat::GgufF16, f16.clone()),
            (ExportFormat::GgufQ8_0, q8.clone())
        ]
    );

    let source = gguf_header(&path);
    for (file, ty, file_type) in [(&f16, GgmlDType::F16, 1), (&q8, GgmlDType::Q8_0, 7)] {
        let h = gguf_header(file);
        assert_eq!(h.metadata["general.file_type"].to_u32().unwrap(), file_type);
        for (k, v) in &source.metadata {
            if k != "general.file_type" {
                assert_eq!(
                    format!("{:?}", h.metadata[k]),
                    format!("{v:?}"),
                    "metadata {k}"
                );
            }
        }
        let mut names: Vec<&String> = h.tensor_infos.keys().collect();
        let mut want: Vec<&String> = source.tensor_infos.keys().collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
        assert_eq!(h.tensor_infos["blk.3.attn_q.weight"].ggml_dtype, ty);
        assert_eq!(h.tensor_infos["token_embd.weight"].ggml_dtype, ty);
        assert_eq!(
            h.tensor_infos["blk.3.ffn_norm.weight"].ggml_dtype,
            GgmlDType::F32
        );
        assert!(
            matches!(h.metadata["general.architecture"], GgufValue::String(ref s) if s == "llama")
        );
    }

    let src = Model::load("source", &path, Precision::Native).unwrap();
    let prompt = chat_prompt(&src);
    let ids = src.encode_prompt(&prompt).unwrap();
    let want = trainable_greedy(&model, &ids, 8);
    let half = Model::load("f16", &f16, Precision::Native).unwrap();
    assert_eq!(half.encode_prompt(&prompt).unwrap(), ids);
    assert_eq!(
        runtime_greedy(half.decoder(), &ids, 8),
        want,
        "f16 greedy tokens"
    );

    // q8_0 rounds every weight to 1/127 of its block's largest, and the runtime's q8_0 kernels
    // round the activations the same way (as llama.cpp does): over 30 layers that moves the
    // logits visibly (here: mean |Δ| ≈ 0.46, max ≈ 3.5, on logits up to ≈ 35), but the next
    // token stays the f32 model's at nearly every position.
    let q = Model::load("q8_0", &q8, Precision::Native).unwrap();
    let short = &ids[..ids.len().min(16)];
    let ours = model.logits(short).unwrap();
    let q_logits = runtime_logits(q.decoder(), short);
    let h_logits = runtime_logits(half.decoder(), short);
    let mean = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let agree = |x: &Tensor| {
        (0..short.len())
            .filter(|&i| {
                argmax(&values(&x.get(i).unwrap())) == argmax(&values(&ours.get(i).unwrap()))
            })
            .count()
    };
    let (dh, dq) = (max_diff(&ours, &h_logits), mean(&ours, &q_logits));
    eprintln!(
        "vs the f32 merged model: f16 max |Δlogit| {dh}; q8_0 mean |Δlogit| {dq}, next token {}/{} the same",
        agree(&q_logits),
        short.len()
    );
    assert!(dh < 0.1, "f16 max |Δlogit| {dh}");
    assert_eq!(agree(&h_logits), short.len());
    // The adapters move the logits far more than f16 rounding does, so a missing merge or a
    // wrong q/k permutation could not pass the f16 checks.
    let (unmerged, _) = codeplan_model::load_gguf(&path, Precision::F32).unwrap();
    let (db, dhm) = (
        mean(&ours, &runtime_logits(&unmerged, short)),
        mean(&ours, &h_logits),
    );
    assert!(
        db > 10.0 * dhm,
        "mean |Δlogit|: unmerged base {db}, f16 {dhm}"
    );
    assert!(dq < 1.0, "q8_0 mean |Δlogit| {dq}");
    assert!(agree(&q_logits) + 2 >= short.len(), "q8_0 next tokens");
}
