//! Prefill and decode speed of the runtime on a real GGUF, for `scripts/bench/generation.py`,
//! which runs llama.cpp on the same file and prompt in the same session.
//!
//! Usage: cargo bench -p codeplan-model --bench generation -- MODEL.gguf PROMPT_IDS.json NEW N [REPEATS]
//! Prints one JSON object: median prefill and decode tokens/s over the repeats.
//! Decoding ignores end-of-generation tokens so every run decodes exactly NEW tokens per
//! sample; N = 1 is greedy, N > 1 samples (temperature 0.6, top-p 0.95) as one batch.

use std::time::Instant;

use codeplan_model::{
    generate_tokens, load_gguf, Control, Precision, PromptRequest, SamplingParams,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 4 {
        eprintln!("usage: generation MODEL.gguf PROMPT_IDS.json NEW N [REPEATS]");
        std::process::exit(2);
    }
    let model = std::path::Path::new(&args[0]);
    let prompt: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(&args[1]).expect("prompt ids file"))
            .expect("a JSON list of token ids");
    let new: usize = args[2].parse().expect("NEW");
    let n: usize = args[3].parse().expect("N");
    let repeats: usize = args.get(4).map_or(3, |r| r.parse().expect("REPEATS"));
    let t = Instant::now();
    let (decoder, _) = load_gguf(model, Precision::Native).expect("loading the model");
    let load_s = t.elapsed().as_secs_f64();
    let sampling = if n == 1 {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: 0.6,
            top_p: 0.95,
            top_k: 0,
            seed: 0,
        }
    };
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let request = PromptRequest {
            prompt: &prompt,
            n,
            max_new_tokens: new,
            sampling: sampling.clone(),
            stop_ids: &[],
        };
        let (out, timings) =
            generate_tokens(&decoder, &request, |_, _| Control::Continue).expect("generation");
        assert!(out.iter().all(|c| c.tokens.len() == new));
        prefill.push(prompt.len() as f64 / timings.prefill.as_secs_f64());
        // The first token of each sample comes from the prefill's logits.
        decode.push(timings.decode_tokens as f64 / timings.decode.as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "engine": "codeplan",
            "prompt_tokens": prompt.len(),
            "new_tokens": new,
            "n": n,
            "load_s": load_s,
            "prefill_tok_s": median(prefill),
            "decode_tok_s": median(decode),
            "repeats": repeats,
        })
    );
}
