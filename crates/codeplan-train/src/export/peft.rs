//! The LoRA adapter as PEFT saves it: `adapter_config.json` and `adapter_model.safetensors`
//! with `base_model.model.<module>.lora_{A,B}.weight` keys, loadable with
//! `peft.PeftModel.from_pretrained(base, folder)` on the base model in transformers.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::error::{Result, TrainError};
use crate::model::{Mode, TrainableModel};

/// The adapter's tensors under PEFT's names: `A (r, in)` and `B (out, r)` per adapted layer.
pub fn adapter_tensors(model: &TrainableModel) -> BTreeMap<String, candle_core::Tensor> {
    let mut out = BTreeMap::new();
    for layer in &model.layers {
        for proj in layer.projections() {
            if let Some(a) = &proj.adapter {
                // PEFT wraps the causal LM (`base_model.model.`) whose decoder is `model.`.
                let key = format!("base_model.model.{}", proj.name);
                out.insert(format!("{key}.lora_A.weight"), a.a.as_tensor().detach());
                out.insert(format!("{key}.lora_B.weight"), a.b.as_tensor().detach());
            }
        }
    }
    out
}

/// PEFT's `adapter_config.json` for the model's LoRA settings.
pub fn adapter_config(model: &TrainableModel, base_name: &str) -> Result<serde_json::Value> {
    let Mode::Lora(spec) = model.mode() else {
        return Err(TrainError::Input(
            "a PEFT adapter needs a LoRA-trained model; this one was fully fine-tuned".into(),
        ));
    };
    let mut targets: Vec<&str> = spec.targets.iter().map(|t| t.module()).collect();
    targets.sort();
    targets.dedup();
    Ok(json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    }))
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`.
pub fn write_adapter(model: &TrainableModel, base_name: &str, dir: &Path) -> Result<()> {
    let config = adapter_config(model, base_name)?;
    let tensors = adapter_tensors(model);
    if tensors.is_empty() {
        return Err(TrainError::Input(format!(
            "{}: the model has no LoRA adapters to export",
            dir.display()
        )));
    }
    super::write_json(&dir.join("adapter_config.json"), &config)?;
    super::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)
}
