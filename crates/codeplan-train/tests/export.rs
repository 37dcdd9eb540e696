//! Exports: merged weights equal the LoRA model, the PEFT adapter has PEFT's names and config,
//! the Hugging Face folder and the GGUF files load in codeplan's runtime and compute what the
//! trained model computes, and bad requests fail with errors that say why.

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use codeplan_model::chat::ChatMessage;
use codeplan_model::model::Model;
use codeplan_model::{Decoder, DecoderConfig, Precision, RopeStyle, Segment};
use codeplan_train::base::BaseWeights;
use codeplan_train::config::{ModeKind, TrainConfig};
use codeplan_train::export::{
    merged_weights, peft, replace_dir, write_exports, ExportFormat, ExportReport,
};
use codeplan_train::lora::{LoraSpec, LoraTarget};
use codeplan_train::model::{Mode, TrainableModel};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn lora(rank: usize, targets: &[LoraTarget]) -> Mode {
    Mode::Lora(LoraSpec {
        rank,
        alpha: 2.0 * rank as f32,
        dropout: 0.0,
        targets: targets.to_vec(),
    })
}

/// Gives every LoRA `B` random values in ±`scale` (it starts at zero: merging would be a no-op).
fn perturb_adapters(model: &TrainableModel, scale: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (name, var) in model.trainable() {
        if name.ends_with("lora_B.weight") {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale)
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                .unwrap();
        }
    }
}

fn tiny_config() -> DecoderConfig {
    DecoderConfig {
        arch: "qwen2".into(),
        vocab_size: 41,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_style: RopeStyle::Halves,
        context_length: 64,
        attention_bias: true,
    }
}

const IDS: [u32; 9] = [3, 17, 5, 40, 0, 22, 9, 31, 12];

#[test]
fn merged_weights_fold_the_adapters_into_the_base() {
    for tied in [true, false] {
        let base = BaseWeights::random(tiny_config(), tied, 1).unwrap();
        let model = TrainableModel::new(
            &base,
            lora(3, &[LoraTarget::QProj, LoraTarget::DownProj]),
            5,
        )
        .unwrap();
        perturb_adapters(&model, 0.3);
        let merged = merged_weights(&model).unwrap();
        assert_eq!(merged.contains_key("lm_head.weight"), !tied);
        assert_eq!(merged.len(), base.tensors.len());
        // By hand for one adapted layer: W + B·A·α/r with α/r = 2.
        let name = "model.layers.1.self_attn.q_proj";
        let a = model.layers[1].q.adapter.as_ref().unwrap();
        let expected = (base.get(&format!("{name}.weight")).unwrap()
            + (a.b.as_tensor().matmul(a.a.as_tensor()).unwrap() * 2.0).unwrap())
        .unwrap();
        assert!(max_diff(&merged[&format!("{name}.weight")], &expected) < 1e-6);
        // Unadapted layers and biases are the base's.
        let k = "model.layers.0.self_attn.k_proj.bias";
        assert_eq!(max_diff(&merged[k], base.get(k).unwrap()), 0.0);
        // A model built from the merged weights computes what the LoRA model computes.
        let merged_base = BaseWeights {
            config: base.config.clone(),
            tensors: merged,
            tied_embeddings: tied,
            source: "(merged)".into(),
        };
        let full = TrainableModel::new(&merged_base, Mode::Full, 0).unwrap();
        let plain = TrainableModel::new(&base, Mode::Full, 0).unwrap();
        let want = model.logits(&IDS).unwrap();
        assert!(max_diff(&full.logits(&IDS).unwrap(), &want) < 1e-5);
        assert!(
            max_diff(&plain.logits(&IDS).unwrap(), &want) > 1e-3,
            "the adapters should change the logits, or this test checks nothing"
        );
    }
}

#[test]
fn peft_adapter_has_peft_names_shapes_and_config() {
    let base = BaseWeights::random(tiny_config(), true, 2).unwrap();
    let targets = [LoraTarget::VProj, LoraTarget::QProj, LoraTarget::UpProj];
    let model = TrainableModel::new(&base, lora(4, &targets), 7).unwrap();
    perturb_adapters(&model, 0.1);
    let dir = tempfile::tempdir().unwrap();
    let report = write_exports(
        &model,
        Path::new("(unused)"),
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        &[ExportFormat::Peft],
        dir.path(),
    )
    .unwrap();
    let adapter = dir.path().join("adapter");
    assert_eq!(report.written, vec![(ExportFormat::Peft, adapter.clone())]);
    let text = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(config["lora_dropout"], 0.0);
    assert_eq!(config["bias"], "none");
    assert_eq!(config["fan_in_fan_out"], false);
    assert_eq!(config["inference_mode"], true);
    assert_eq!(
        config["base_model_name_or_path"],
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "up_proj", "v_proj"])
    );
    let tensors =
        candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(tensors.len(), 2 * 3 * 2);
    let c = tiny_config();
    for i in 0..c.num_layers {
        for (module, out) in [
            ("self_attn.q_proj", c.num_heads * c.head_dim),
            ("self_attn.v_proj", c.num_kv_heads * c.head_dim),
            ("mlp.up_proj", c.intermediate_size),
        ] {
            let key = format!("base_model.model.model.layers.{i}.{module}");
            let a = &tensors[&format!("{key}.lora_A.weight")];
            let b = &tensors[&format!("{key}.lora_B.weight")];
            assert_eq!(a.dims(), [4, c.hidden_size]);
            assert_eq!(b.dims(), [out, 4]);
        }
    }
    let ours = model.layers[1].v.adapter.as_ref().unwrap();
    let key = "base_model.model.model.layers.1.self_attn.v_proj";
    assert_eq!(
        max_diff(
            &tensors[&format!("{key}.lora_B.weight")],
            ours.b.as_tensor()
        ),
        0.0
    );
    assert_eq!(
        max_diff(
            &tensors[&format!("{key}.lora_A.weight")],
            ours.a.as_tensor()
        ),
        0.0
    );

    // Full fine-tuning has no adapter: skipped by the exporter, refused when asked directly.
    let full = TrainableModel::new(&base, Mode::Full, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = write_exports(
        &full,
        Path::new("x"),
        "b",
        &[ExportFormat::Peft],
        dir.path(),
    )
    .unwrap();
    assert!(report.written.is_empty());
    assert_eq!(report.skipped.len(), 1);
    assert!(!dir.path().join("adapter").exists());
    let err = peft::adapter_config(&full, "b").unwrap_err().to_string();
    assert!(err.contains("fully fine-tuned"), "{err}");
}

#[test]
fn replace_dir_publishes_complete_folders_only() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model");
    replace_dir(&dest, |tmp| {
        std::fs::write(tmp.join("a.txt"), "one").unwrap();
        Ok(())
    })
    .unwrap();
    // A failed write leaves the previous export untouched and no temporary folder behind.
    let err = replace_dir(&dest, |tmp| {
        std::fs::write(tmp.join("a.txt"), "half").unwrap();
        Err(codeplan_train::TrainError::Input("disk full".into()))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "disk full");
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "one");
    // A successful one replaces it whole (no file of the old export survives).
    replace_dir(&dest, |tmp| {
        std::fs::write(tmp.join("b.txt"), "two").unwrap();
        Ok(())
    })
    .unwrap();
    assert!(!dest.join("a.txt").exists());
    assert_eq!(std::fs::read_to_string(dest.join("b.txt")).unwrap(), "two");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model"]);
}

#[test]
fn export_formats_parse_and_gguf_needs_a_gguf_source() {
    assert_eq!(
        "gguf-q8_0".parse::<ExportFormat>().unwrap(),
        ExportFormat::GgufQ8_0
    );
    assert_eq!(
        "gguf_f16".parse::<ExportFormat>().unwrap(),
        ExportFormat::GgufF16
    );
    let err = "onnx".parse::<ExportFormat>().unwrap_err().to_string();
    assert!(err.contains("unknown export format `onnx`"), "{err}");
    let config: TrainConfig = toml::from_str("export = [\"peft\", \"gguf_q8_0\"]").unwrap();
    assert_eq!(config.export, [ExportFormat::Peft, ExportFormat::GgufQ8_0]);
    assert_eq!(
        TrainConfig::default().export,
        [ExportFormat::Peft, ExportFormat::Hf]
    );

    // A Hugging Face source: refused by the config check before training, and by the exporter.
    let hf = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        model: hf.path().to_owned(),
        data: vec!["data.jsonl".into()],
        tasks: vec!["code".into()],
        mode: ModeKind::Lora,
        export: vec![ExportFormat::Hf, ExportFormat::GgufF16],
        ..TrainConfig::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("GGUF export needs a GGUF source model"),
        "{err}"
    );
    let base = BaseWeights::random(tiny_config(), true, 2).unwrap();
    let model = TrainableModel::new(&base, Mode::Full, 0).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = write_exports(
        &model,
        hf.path(),
        "b",
        &[ExportFormat::Hf, ExportFormat::GgufQ8_0],
        out.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("GGUF export needs a GGUF source model"),
        "{err}"
    );
    assert!(err.contains(&hf.path().display().to_string()), "{err}");
    // Nothing was written before the refusal.
    assert!(!out.path().join("model").exists());
    // A file that is not GGUF is named as such.
    let bogus = out.path().join("model.bin");
    std::fs::write(&bogus, b"not a gguf").unwrap();
    let err = write_exports(&model, &bogus, "b", &[ExportFormat::GgufF16], out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.bin") && err.contains("not a readable GGUF file"),
        "{err}"
    );
}

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
