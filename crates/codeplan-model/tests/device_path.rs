//! The device-generic path — candle's operations only, weights and key/value cache on the
//! device — which is how a CUDA GPU runs a model. Here it runs on the CPU
//! (`Placement::Candle(Device::Cpu)`) and is held to the CPU path's results on the real model:
//! the same numbers wherever both compute in f32, and agreement up to near-ties where the two
//! use different quantised kernels.

mod common;

use candle_core::Device;
use codeplan_model::model::{Model, TextRequest};
use codeplan_model::{
    generate_tokens, Control, Decoder, Placement, Precision, PromptRequest, SamplingParams, Segment,
};

const PROMPT: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n";

fn portable() -> Placement {
    Placement::Candle(Device::Cpu)
}

fn tokens(decoder: &Decoder, prompt: &[u32], n: usize, sampling: SamplingParams) -> Vec<Vec<u32>> {
    let request = PromptRequest {
        prompt,
        n,
        max_new_tokens: 16,
        sampling,
        stop_ids: &[],
    };
    let (out, _) = generate_tokens(decoder, &request, |_, _| Control::Continue).unwrap();
    out.into_iter().map(|c| c.tokens).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn the_device_path_computes_what_the_cpu_path_does_in_f32() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let cpu = Model::load("cpu", &path, Precision::F32).unwrap();
    let dev = Model::load_on("device", &path, Precision::F32, &portable()).unwrap();
    assert_eq!(
        dev.decoder().placement().describe(),
        "cpu (candle operations)"
    );
    assert_eq!(cpu.decoder().placement().describe(), "cpu");
    assert!(cpu.decoder().new_cache().is_host());
    assert!(!dev.decoder().new_cache().is_host());
    let prompt = cpu.encode_prompt(PROMPT).unwrap();

    // Prefill, then decode steps, one sequence alone and two continuing a frozen prefix: the
    // logits of every pass agree (the CPU path fuses its decode steps, the device path never
    // does, so this also crosses the fused step against the device's cache).
    let run = |d: &Decoder| {
        let mut out = Vec::new();
        let mut prefix = d.new_cache();
        let first = d
            .forward(&mut [Segment {
                cache: &mut prefix,
                tokens: &prompt,
            }])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        out.push(first[0].clone());
        let prefix = prefix.freeze().unwrap();
        let mut caches = [
            codeplan_model::cache::SequenceCache::continuing(prefix.clone()),
            codeplan_model::cache::SequenceCache::continuing(prefix),
        ];
        let mut next = [prompt[1], prompt[2]];
        for _ in 0..12 {
            let fed = [[next[0]], [next[1]]];
            let mut segments: Vec<Segment<'_>> = caches
                .iter_mut()
                .zip(&fed)
                .map(|(cache, tokens)| Segment { cache, tokens })
                .collect();
            let logits = d.forward(&mut segments).unwrap().to_vec2::<f32>().unwrap();
            next = [
                codeplan_model::sampling::argmax(&logits[0]),
                codeplan_model::sampling::argmax(&logits[1]),
            ];
            out.extend(logits);
        }
        assert_eq!(caches[0].len(), prompt.len() + 12);
        out
    };
    let (a, b) = (run(cpu.decoder()), run(dev.decoder()));
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| max_diff(x, y))
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "max |Δlogit| between the paths = {worst}");

    // Whole generations: greedy, and n = 3 seeded samples from one shared prefill.
    let greedy = SamplingParams::greedy();
    assert_eq!(
        tokens(cpu.decoder(), &prompt, 1, greedy.clone()),
        tokens(dev.decoder(), &prompt, 1, greedy)
    );
    let sampled = SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        seed: 7,
        ..SamplingParams::greedy()
    };
    let (x, y) = (
        tokens(cpu.decoder(), &prompt, 3, sampled.clone()),
        tokens(dev.decoder(), &prompt, 3, sampled),
    );
    assert_eq!(x, y);
    assert!(
        x[0] != x[1] || x[1] != x[2],
        "three samples, all equal: {x:?}"
    );
}

#[test]
fn the_device_path_runs_quantised_weights_with_candles_kernels() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let cpu = Model::load("cpu", &path, Precision::Native).unwrap();
    let dev = Model::load_on("device", &path, Precision::Native, &portable()).unwrap();
    let reference = Model::load("f32", &path, Precision::F32).unwrap();
    let prompt = cpu.encode_prompt(PROMPT).unwrap();
    let greedy = SamplingParams::greedy();
    let a = tokens(cpu.decoder(), &prompt, 1, greedy.clone()).remove(0);
    let b = tokens(dev.decoder(), &prompt, 1, greedy).remove(0);
    // Both round activations to 8 bits, with different kernels: the first tokens agree, and
    // where the two part it is at a near-tie of the f32 model's logits.
    let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(same >= 4, "cpu    {a:?}\ndevice {b:?}");
    if same < a.len() {
        let mut context = prompt.clone();
        context.extend(&a[..same]);
        let logits = common::next_logits(reference.decoder(), &context);
        let margin = (logits[a[same] as usize] - logits[b[same] as usize]).abs();
        assert!(
            margin < 0.35,
            "parted at token {same} by {margin:.3}\ncpu    {a:?}\ndevice {b:?}"
        );
    }

    // Text-level generation with stop sequences works the same way on the device path.
    let request = TextRequest {
        n: 2,
        max_new_tokens: 24,
        sampling: SamplingParams::greedy(),
        stop: vec!["\n\n".into()],
    };
    let out = dev.complete(&prompt, &request, |_, _| {}).unwrap();
    assert_eq!(out.completions.len(), 2);
    assert_eq!(out.completions[0], out.completions[1]);
    assert!(!out.completions[0].text.contains("\n\n"));
}
