//! Prints the token ids and last-position logits codeplan's runtime computes for a text, as
//! JSON, so that exported models can be compared with transformers/PEFT and llama.cpp
//! (`scripts/bench/check_hf_export.py`, `check_gguf_export.py`):
//!
//! `cargo run -p codeplan-train --example dump_logits -- MODEL TEXT_FILE [native] > out.json`
//! (`native` keeps GGUF weights quantised, as `generate` runs them; the default is f32).

use std::path::PathBuf;

use codeplan_model::model::Model;
use codeplan_model::{Precision, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, text, precision) = match args.as_slice() {
        [model, text] => (model, text, Precision::F32),
        [model, text, n] if n == "native" => (model, text, Precision::Native),
        _ => return Err("usage: dump_logits MODEL(.gguf|HF folder) TEXT_FILE [native]".into()),
    };
    let text = std::fs::read_to_string(text).map_err(|e| format!("{text}: {e}"))?;
    let model = Model::load("model", &PathBuf::from(model), precision)?;
    let ids = model.encode_prompt(&text)?;
    let d = model.decoder();
    let mut cache = d.new_cache();
    let logits = d.forward(&mut [Segment {
        tokens: &ids,
        cache: &mut cache,
    }])?;
    let logits: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
    println!("{}", serde_json::json!({"ids": ids, "logits": logits}));
    Ok(())
}
