//! A Hugging Face folder (config.json, sharded safetensors with an index, tokenizer.json,
//! tokenizer_config.json with the chat template, generation_config.json) loads and computes the
//! same thing as the GGUF it was made from.
//!
//! The folder is built here from the real SmolLM2 GGUF: weights dequantised, renamed to
//! transformers' names, and q/k rows un-permuted (llama.cpp's converter permutes them for its
//! interleaved RoPE; Hugging Face checkpoints keep the original order).

mod common;

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use codeplan_model::chat::ChatMessage;
use codeplan_model::model::{Model, TextRequest};
use codeplan_model::weights::Role;
use codeplan_model::{load_gguf, Precision, SamplingParams, Segment};
use serde_json::json;

/// Undoes llama.cpp's q/k row permutation for `heads` heads.
fn unpermute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    let hd = rows / heads;
    w.reshape((heads, hd / 2, 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

fn meta_u(content: &gguf_file::Content, key: &str) -> usize {
    content.metadata[key].to_u32().unwrap() as usize
}

#[test]
fn hf_folder_matches_the_gguf() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (reference, content) = load_gguf(&path, Precision::F32).unwrap();
    let c = reference.config().clone();
    let mut file = std::fs::File::open(&path).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut put = |role: Role, transform: &dyn Fn(Tensor) -> Tensor| {
        let q = content
            .tensor(
                &mut file,
                &format!("{}.weight", role.gguf_name()),
                &Device::Cpu,
            )
            .unwrap();
        let t = transform(q.dequantize(&Device::Cpu).unwrap());
        tensors.insert(format!("{}.weight", role.hf_name()), t);
    };
    let same = |t: Tensor| t;
    put(Role::Embedding, &same);
    put(Role::FinalNorm, &same);
    for i in 0..c.num_layers {
        put(Role::AttnNorm(i), &same);
        put(Role::Q(i), &|t| unpermute(&t, c.num_heads));
        put(Role::K(i), &|t| unpermute(&t, c.num_kv_heads));
        for role in [
            Role::V(i),
            Role::O(i),
            Role::FfnNorm(i),
            Role::Gate(i),
            Role::Up(i),
            Role::Down(i),
        ] {
            put(role, &same);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // Two shards and an index, as transformers writes big checkpoints.
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let subset: HashMap<String, Tensor> = part
            .iter()
            .map(|n| (n.clone(), tensors[n].clone()))
            .collect();
        candle_core::safetensors::save(&subset, dir.path().join(shard)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), json!(shard));
        }
    }
    let write = |name: &str, v: serde_json::Value| {
        std::fs::write(
            dir.path().join(name),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap()
    };
    write(
        "model.safetensors.index.json",
        json!({"metadata": {}, "weight_map": weight_map}),
    );
    write(
        "config.json",
        json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.num_kv_heads,
            "rms_norm_eps": c.rms_norm_eps,
            "rope_theta": c.rope_theta,
            "max_position_embeddings": meta_u(&content, "llama.context_length"),
            "tie_word_embeddings": true,
            "torch_dtype": "float32",
        }),
    );
    let tokenizer = codeplan_model::tokenizer::Tokenizer::from_gguf(&content).unwrap();
    tokenizer
        .inner()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let template = codeplan_model::chat::ChatTemplate::from_gguf(&content)
        .unwrap()
        .unwrap();
    let token = |id: Option<u32>| tokenizer.token_text(id.unwrap()).unwrap();
    write(
        "tokenizer_config.json",
        json!({
            "bos_token": token(tokenizer.bos_id()),
            "eos_token": token(tokenizer.eos_id()),
            "add_bos_token": false,
            "chat_template": template.source(),
        }),
    );
    write(
        "generation_config.json",
        json!({"eos_token_id": tokenizer.stop_ids()}),
    );

    let hf = Model::load("smollm2-hf", dir.path(), Precision::F32).unwrap();
    assert_eq!(hf.decoder().config().num_layers, c.num_layers);
    // Same logits on a chat prompt rendered by the folder's own template.
    let messages = [ChatMessage::new(
        "user",
        "Write a Python function that adds two numbers.",
    )];
    let text = hf.render_chat(&messages).unwrap();
    let ids = hf.encode_prompt(&text).unwrap();
    assert_eq!(ids, tokenizer.encode(&text, false).unwrap());
    let logits = |d: &codeplan_model::Decoder| {
        let mut cache = d.new_cache();
        d.forward(&mut [Segment {
            cache: &mut cache,
            tokens: &ids,
        }])
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
    };
    let (x, y) = (logits(&reference), logits(hf.decoder()));
    let diff = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-3,
        "max |Δlogit| between GGUF and HF folder: {diff}"
    );
    // And text generation works end to end from the folder.
    let out = hf
        .complete(
            &ids,
            &TextRequest {
                n: 1,
                max_new_tokens: 8,
                sampling: SamplingParams::greedy(),
                stop: vec![],
            },
            |_, _| {},
        )
        .unwrap();
    assert!(out.completions[0].tokens > 0);
}
