//! Exports on tiny random models: merged weights equal the LoRA model, the PEFT adapter has
//! PEFT's names and config, folders are replaced atomically, and bad requests fail with errors
//! that say why. (The real model's exports: `export_smollm2.rs`.)

mod common;

use std::path::Path;

use candle_core::Device;
use codeplan_model::{DecoderConfig, RopeStyle};
use codeplan_train::base::BaseWeights;
use codeplan_train::config::{ModeKind, TrainConfig};
use codeplan_train::export::{merged_weights, peft, replace_dir, write_exports, ExportFormat};
use codeplan_train::lora::LoraTarget;
use codeplan_train::model::{Mode, TrainableModel};
use common::{lora, max_diff, perturb_adapters};

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
