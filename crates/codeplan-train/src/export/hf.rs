//! The merged model as a Hugging Face folder: `config.json`, `model.safetensors` (f32),
//! `tokenizer.json`, `tokenizer_config.json` (with the chat template) and
//! `generation_config.json`, loadable by transformers' `AutoModelForCausalLM` and by
//! [`codeplan_model::model::Model::load`].

use std::path::Path;

use codeplan_model::chat::ChatTemplate;
use codeplan_model::tokenizer::Tokenizer;
use serde_json::{json, Map, Value};

use crate::error::{Result, TrainError};
use crate::model::TrainableModel;

/// Files of a Hugging Face source folder that describe its text side and are copied unchanged
/// (they may carry settings this crate does not model, e.g. normalisers or extra tokens).
const TEXT_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// transformers' class for an architecture name.
fn architecture(arch: &str) -> Result<&'static str> {
    match arch {
        "llama" => Ok("LlamaForCausalLM"),
        "qwen2" => Ok("Qwen2ForCausalLM"),
        other => Err(TrainError::Input(format!(
            "cannot export architecture `{other}` as a Hugging Face folder (known: llama, qwen2)"
        ))),
    }
}

/// The shortest decimal that reads back as the same f32, so `1e-5` stays `1e-5` rather than
/// the f32's exact binary value.
fn f32_number(x: f64) -> Value {
    let short: f64 = (x as f32)
        .to_string()
        .parse()
        .expect("f32 prints as a number");
    json!(short)
}

/// `config.json` for the model; `base` (the source folder's own `config.json`, if any) keeps
/// keys this crate does not model (e.g. `rope_scaling`), and every key it models is overwritten.
pub fn config_json(
    model: &TrainableModel,
    tokenizer: &Tokenizer,
    base: Option<Value>,
) -> Result<Value> {
    let c = model.config();
    let mut out = match base {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let entries = [
        ("architectures", json!([architecture(&c.arch)?])),
        ("model_type", json!(c.arch)),
        ("vocab_size", json!(c.vocab_size)),
        ("hidden_size", json!(c.hidden_size)),
        ("intermediate_size", json!(c.intermediate_size)),
        ("num_hidden_layers", json!(c.num_layers)),
        ("num_attention_heads", json!(c.num_heads)),
        ("num_key_value_heads", json!(c.num_kv_heads)),
        ("head_dim", json!(c.head_dim)),
        ("hidden_act", json!("silu")),
        ("rms_norm_eps", f32_number(c.rms_norm_eps)),
        ("rope_theta", f32_number(c.rope_theta as f64)),
        ("max_position_embeddings", json!(c.context_length)),
        ("tie_word_embeddings", json!(model.head.is_none())),
        ("torch_dtype", json!("float32")),
        ("bos_token_id", json!(tokenizer.bos_id())),
        ("eos_token_id", json!(tokenizer.eos_id())),
    ];
    for (k, v) in entries {
        out.insert(k.to_owned(), v);
    }
    // The weights written are dense f32, whatever a quantised source said.
    out.remove("quantization_config");
    if c.arch == "llama" {
        // Qwen2 always has q/k/v biases; Llama's are optional and off by default.
        out.insert("attention_bias".into(), json!(c.attention_bias));
        out.insert("mlp_bias".into(), json!(false));
    }
    // transformers ≥ 4.56 reads `dtype`; older versions `torch_dtype`.
    out.insert("dtype".into(), json!("float32"));
    Ok(Value::Object(out))
}

fn token(tokenizer: &Tokenizer, id: Option<u32>) -> Option<String> {
    id.and_then(|id| tokenizer.token_text(id))
}

/// `tokenizer.json` from a tokenizer: its own serialisation, plus a post-processor that prepends
/// BOS when the model expects one (transformers adds special tokens through it; codeplan's
/// runtime decides BOS from `add_bos_token` and ignores it).
pub fn tokenizer_json(tokenizer: &Tokenizer) -> Result<Value> {
    let text = tokenizer
        .inner()
        .to_string(false)
        .map_err(|e| TrainError::Input(format!("the tokenizer could not be serialised: {e}")))?;
    let mut v: Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::Input(format!("the tokenizer serialised to invalid JSON: {e}")))?;
    if let (true, Some(id)) = (tokenizer.add_bos_by_default(), tokenizer.bos_id()) {
        let bos = token(tokenizer, Some(id)).unwrap_or_default();
        let special = |seq: &str| json!([{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": seq, "type_id": 0}}]);
        let mut pair = special("A").as_array().cloned().unwrap_or_default();
        pair.extend(special("B").as_array().cloned().unwrap_or_default());
        v["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": special("A"),
            "pair": pair,
            "special_tokens": {bos.clone(): {"id": bos, "ids": [id], "tokens": [bos]}},
        });
    }
    Ok(v)
}

/// `tokenizer_config.json`: special tokens, `add_bos_token` and the chat template.
pub fn tokenizer_config(
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
    max_length: usize,
) -> Value {
    let mut v = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token(tokenizer, tokenizer.bos_id()),
        "eos_token": token(tokenizer, tokenizer.eos_id()),
        "add_bos_token": tokenizer.add_bos_by_default(),
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": max_length,
    });
    if let Some(pad) = token(tokenizer, tokenizer.pad_id()) {
        v["pad_token"] = json!(pad);
    }
    if let Some(t) = template {
        v["chat_template"] = json!(t.source());
    }
    v
}

/// `generation_config.json`: BOS and every end-of-generation id.
pub fn generation_config(tokenizer: &Tokenizer) -> Value {
    let stops = tokenizer.stop_ids();
    let eos = match (stops, tokenizer.eos_id()) {
        ([one], _) => json!(one),
        ([], eos) => json!(eos),
        (many, _) => json!(many),
    };
    json!({"bos_token_id": tokenizer.bos_id(), "eos_token_id": eos})
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::Input(format!("{}: not valid JSON: {e}", path.display())))
}

/// Writes the merged model into `dir` (which must exist). `source` is the base model: the text
/// side is copied from a Hugging Face folder, or rebuilt from a GGUF file's metadata.
pub fn write_folder(model: &TrainableModel, source: &Path, dir: &Path) -> Result<()> {
    let (tokenizer, template) = codeplan_model::load_text_side(source)?;
    let base_config = if source.is_dir() {
        for name in TEXT_FILES {
            let from = source.join(name);
            if from.exists() {
                std::fs::copy(&from, dir.join(name)).map_err(|e| TrainError::io(&from, e))?;
            }
        }
        Some(read_json(&source.join("config.json"))?)
    } else {
        super::write_json(&dir.join("tokenizer.json"), &tokenizer_json(&tokenizer)?)?;
        super::write_json(
            &dir.join("tokenizer_config.json"),
            &tokenizer_config(&tokenizer, template.as_ref(), model.config().context_length),
        )?;
        None
    };
    if !dir.join("generation_config.json").exists() {
        super::write_json(
            &dir.join("generation_config.json"),
            &generation_config(&tokenizer),
        )?;
    }
    super::write_json(
        &dir.join("config.json"),
        &config_json(model, &tokenizer, base_config)?,
    )?;
    let weights = super::merged_weights(model)?;
    super::write_safetensors(&dir.join("model.safetensors"), &weights)
}
