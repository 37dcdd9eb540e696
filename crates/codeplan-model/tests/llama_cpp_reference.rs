//! Greedy generation against llama.cpp's: the same GGUF, the same prompt ids, the tokens that
//! `llama-cpp-python` produced (recorded by `scripts/reference/llama_cpp_reference.py` into
//! `fixtures/llama_cpp_reference.json`).
//!
//! Both engines round activations differently inside the quantised kernels, so two greedy runs
//! may part where two tokens are nearly tied. The test demands agreement up to the first such
//! near-tie, that the near-tie is real in our own logits, and that most tokens agree overall.

mod common;

use codeplan_model::{
    generate_tokens, load_gguf, Control, Precision, PromptRequest, SamplingParams,
};
use serde_json::Value;

/// Share of llama.cpp's tokens, over all prompts of a model, that must be reproduced exactly
/// before the first parting of each prompt.
const MIN_AGREEMENT: f64 = 0.6;
/// Largest logit gap between llama.cpp's choice and ours that counts as a near-tie.
const TIE_MARGIN: f32 = 0.35;

fn reference() -> Value {
    let text = include_str!("fixtures/llama_cpp_reference.json");
    serde_json::from_str(text).unwrap()
}

fn check_model(name: &str) {
    let Some(path) = common::model_or_skip(name) else {
        return;
    };
    let (decoder, content) = load_gguf(&path, Precision::Native).unwrap();
    let tokenizer = codeplan_model::tokenizer::Tokenizer::from_gguf(&content).unwrap();
    let reference = reference();
    let completions = reference["models"][name]["completions"].as_array().unwrap();
    assert!(!completions.is_empty());
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut report = Vec::new();
    let (mut agreed, mut total) = (0usize, 0usize);
    for case in completions {
        let prompt = ids(&case["prompt_ids"]);
        let mut want = ids(&case["generated_ids"]);
        // llama.cpp lists the end-of-generation token; we stop before it.
        if let Some(stop) = want.iter().position(|t| tokenizer.is_stop(*t)) {
            want.truncate(stop);
        }
        let (out, _) = generate_tokens(
            &decoder,
            &PromptRequest {
                prompt: &prompt,
                n: 1,
                max_new_tokens: 48,
                sampling: SamplingParams::greedy(),
                stop_ids: tokenizer.stop_ids(),
            },
            |_, _| Control::Continue,
        )
        .unwrap();
        let got = &out[0].tokens;
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        agreed += same;
        total += want.len();
        if same == got.len().max(want.len()) {
            report.push(format!("{}: identical ({same} tokens)", case["kind"]));
            continue;
        }
        // At the parting, both tokens must be near the top of our own logits.
        let mut context = prompt.clone();
        context.extend(&got[..same]);
        let logits = common::next_logits(&decoder, &context);
        let theirs = want
            .get(same)
            .copied()
            .unwrap_or_else(|| tokenizer.stop_ids()[0]);
        let ours = got
            .get(same)
            .copied()
            .unwrap_or_else(|| tokenizer.stop_ids()[0]);
        let gap = logits[ours as usize] - logits[theirs as usize];
        assert!(
            gap.abs() < TIE_MARGIN,
            "{name} {}: parted at token {same} by {gap:.3} logits\nours      {got:?}\nllama.cpp {want:?}",
            case["kind"]
        );
        report.push(format!(
            "{}: {same} identical tokens, then a near-tie ({gap:.3} logits)",
            case["kind"]
        ));
    }
    eprintln!("{name} vs llama.cpp: {}", report.join("; "));
    assert!(
        agreed as f64 >= MIN_AGREEMENT * total as f64,
        "{name}: only {agreed} of llama.cpp's {total} tokens reproduced: {}",
        report.join("; ")
    );
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check_model("smollm2-135m");
}

#[test]
fn qwen_coder_greedy_matches_llama_cpp() {
    check_model("qwen2.5-coder-0.5b");
}
