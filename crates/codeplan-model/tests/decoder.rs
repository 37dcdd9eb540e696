//! The decoder on real models: quantised vs dequantised agreement, batching that changes
//! nothing, and reproducible sampling.

mod common;

use candle_core::quantized::gguf_file;
use codeplan_model::{
    generate_tokens, load_gguf, Control, Decoder, FinishReason, Precision, PromptRequest,
    SamplingParams, Segment,
};

/// A real prompt, spelled in the vocabulary's own byte-level pieces (so that this test does
/// not depend on the tokenizer): `def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n`.
fn prompt_ids(content: &gguf_file::Content) -> Vec<u32> {
    let tokens = content.metadata["tokenizer.ggml.tokens"].to_vec().unwrap();
    let id = |piece: &str| {
        tokens
            .iter()
            .position(|t| t.to_string().unwrap() == piece)
            .unwrap_or_else(|| panic!("piece {piece:?} is not in the vocabulary")) as u32
    };
    [
        "def", "Ġfib", "on", "acci", "(", "n", "):", "Ċ", "ĠĠĠ", "Ġ\"\"\"", "Return", "Ġthe", "Ġn",
        "-", "th", "ĠFib", "on", "acci", "Ġnumber", ".", "\"\"\"", "Ċ",
    ]
    .iter()
    .map(|p| id(p))
    .collect()
}

fn greedy(decoder: &Decoder, prompt: &[u32], n: usize, max_new: usize) -> Vec<Vec<u32>> {
    let request = PromptRequest {
        prompt,
        n,
        max_new_tokens: max_new,
        sampling: SamplingParams::greedy(),
        stop_ids: &[],
    };
    let (out, _) = generate_tokens(decoder, &request, |_, _| Control::Continue).unwrap();
    out.into_iter().map(|c| c.tokens).collect()
}

#[test]
fn quantised_and_dequantised_greedy_agree() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (q, content) = load_gguf(&path, Precision::Native).unwrap();
    let (f, _) = load_gguf(&path, Precision::F32).unwrap();
    let prompt = prompt_ids(&content);
    let a = greedy(&q, &prompt, 1, 12).remove(0);
    let b = greedy(&f, &prompt, 1, 12).remove(0);
    // The weights are the same numbers either way; the quantised kernels round the activations
    // to 8 bits, which moves logits by a few hundredths. The first tokens must agree, and where
    // the two paths part, it must be at a near-tie of the f32 logits, not a real disagreement.
    let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(same >= 4, "quantised {a:?}\nf32       {b:?}");
    if same < a.len() {
        let mut context = prompt.clone();
        context.extend(&a[..same]);
        let logits = common::next_logits(&f, &context);
        let margin = (logits[a[same] as usize] - logits[b[same] as usize]).abs();
        assert!(
            margin < 0.25,
            "the paths part at token {same} where f32 prefers {} by {margin:.3} logits\nquantised {a:?}\nf32       {b:?}",
            b[same]
        );
    }
}

#[test]
fn batched_segments_give_the_same_logits_as_separate_passes() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, content) = load_gguf(&path, Precision::F32).unwrap();
    let p = prompt_ids(&content);
    let (a, b) = (&p[..10], &p[4..21]);
    let alone = |tokens: &[u32]| {
        let mut cache = d.new_cache();
        let logits = d
            .forward(&mut [Segment {
                cache: &mut cache,
                tokens,
            }])
            .unwrap();
        logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap()
    };
    let (mut ca, mut cb) = (d.new_cache(), d.new_cache());
    let both = d
        .forward(&mut [
            Segment {
                cache: &mut ca,
                tokens: a,
            },
            Segment {
                cache: &mut cb,
                tokens: b,
            },
        ])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (got, want) in both.iter().zip([alone(a), alone(b)]) {
        let diff = got
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-3, "max |Δlogit| = {diff}");
    }
    assert_eq!((ca.len(), cb.len()), (10, 17));
}

#[test]
fn n_samples_share_a_prefill_and_match_single_runs() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, content) = load_gguf(&path, Precision::Native).unwrap();
    let prompt = prompt_ids(&content);
    let single = greedy(&d, &prompt, 1, 10).remove(0);
    for sample in greedy(&d, &prompt, 3, 10) {
        assert_eq!(sample, single);
    }
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, content) = load_gguf(&path, Precision::Native).unwrap();
    let prompt = prompt_ids(&content);
    let run = |seed, n| {
        let request = PromptRequest {
            prompt: &prompt,
            n,
            max_new_tokens: 16,
            sampling: SamplingParams {
                temperature: 0.9,
                top_p: 0.95,
                top_k: 40,
                seed,
            },
            stop_ids: &[],
        };
        generate_tokens(&d, &request, |_, _| Control::Continue)
            .unwrap()
            .0
            .into_iter()
            .map(|c| c.tokens)
            .collect::<Vec<_>>()
    };
    let first = run(42, 4);
    assert_eq!(first, run(42, 4), "same seed, same samples");
    assert_ne!(first, run(43, 4), "another seed, other samples");
    assert!(
        first.iter().any(|s| s != &first[0]),
        "the 4 samples differ from each other"
    );
}

#[test]
fn stop_tokens_callbacks_and_lengths_end_samples() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, content) = load_gguf(&path, Precision::Native).unwrap();
    let prompt = prompt_ids(&content);
    let free = greedy(&d, &prompt, 1, 8).remove(0);
    // The 4th greedy token as a stop token: the sample ends before it.
    let request = PromptRequest {
        prompt: &prompt,
        n: 1,
        max_new_tokens: 8,
        sampling: SamplingParams::greedy(),
        stop_ids: &[free[3]],
    };
    let (out, _) = generate_tokens(&d, &request, |_, _| Control::Continue).unwrap();
    let first_stop = free.iter().position(|&t| t == free[3]).unwrap();
    assert_eq!(out[0].tokens, free[..first_stop]);
    assert_eq!(out[0].finish_reason, FinishReason::Stop);
    // The caller stops after 2 tokens.
    let request = PromptRequest {
        stop_ids: &[],
        ..request
    };
    let mut seen = 0;
    let (out, _) = generate_tokens(&d, &request, |_, _| {
        seen += 1;
        if seen == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert_eq!(out[0].tokens, free[..2]);
    assert_eq!(out[0].finish_reason, FinishReason::Stop);
    // max_new_tokens.
    assert_eq!(greedy(&d, &prompt, 1, 5)[0], free[..5]);
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, _) = load_gguf(&path, Precision::Native).unwrap();
    let context = d.config().context_length;
    let long = vec![1u32; context];
    let cases: Vec<(PromptRequest<'_>, &str)> = vec![
        (
            PromptRequest {
                prompt: &[],
                n: 1,
                max_new_tokens: 4,
                sampling: SamplingParams::greedy(),
                stop_ids: &[],
            },
            "empty",
        ),
        (
            PromptRequest {
                prompt: &[1, 2],
                n: 0,
                max_new_tokens: 4,
                sampling: SamplingParams::greedy(),
                stop_ids: &[],
            },
            "n must be",
        ),
        (
            PromptRequest {
                prompt: &long,
                n: 1,
                max_new_tokens: 4,
                sampling: SamplingParams::greedy(),
                stop_ids: &[],
            },
            "context",
        ),
        (
            PromptRequest {
                prompt: &[u32::MAX],
                n: 1,
                max_new_tokens: 4,
                sampling: SamplingParams::greedy(),
                stop_ids: &[],
            },
            "outside the vocabulary",
        ),
    ];
    for (request, want) in cases {
        let err = generate_tokens(&d, &request, |_, _| Control::Continue).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want}"
        );
    }
}

#[test]
fn a_shared_prompt_prefix_computes_what_one_cache_does() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let (d, content) = load_gguf(&path, Precision::F32).unwrap();
    let prompt = prompt_ids(&content);
    // Greedy decoding by hand with one plain cache…
    let mut cache = d.new_cache();
    let mut tokens = Vec::new();
    let mut feed = prompt.clone();
    let mut last_logits = Vec::new();
    for _ in 0..6 {
        let logits = d
            .forward(&mut [Segment {
                cache: &mut cache,
                tokens: &feed,
            }])
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let next = codeplan_model::sampling::argmax(&logits);
        tokens.push(next);
        feed = vec![next];
        last_logits = logits;
    }
    // …and through the batch, whose samples continue the frozen prompt cache.
    assert_eq!(
        greedy(&d, &prompt, 2, 6),
        vec![tokens.clone(), tokens.clone()]
    );
    let prefix = {
        let mut c = d.new_cache();
        d.forward(&mut [Segment {
            cache: &mut c,
            tokens: &prompt,
        }])
        .unwrap();
        c.freeze().unwrap()
    };
    let mut own = codeplan_model::cache::SequenceCache::continuing(prefix);
    let mut logits = Vec::new();
    for &t in &tokens[..5] {
        logits = d
            .forward(&mut [Segment {
                cache: &mut own,
                tokens: &[t],
            }])
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
    }
    assert_eq!(own.len(), prompt.len() + 5);
    let diff = logits
        .iter()
        .zip(&last_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-3, "max |Δlogit| = {diff}");
}

/// The fused decode step against the general path on the real model(s): three sequences (one
/// alone, two continuing a shared prompt prefix) decoded greedily for 40 steps through
/// [`Decoder::forward_general`], then fed the same tokens through [`Decoder::forward`] (which
/// fuses one-token steps): the logits of every step compared, and the greedy choices.
fn fused_step_matches_general_path(name: &str, precision: Precision) {
    let Some(path) = common::model_or_skip(name) else {
        return;
    };
    let (d, content) = load_gguf(&path, precision).unwrap();
    let prompt = prompt_ids(&content);
    // `forced`: the tokens to feed (the general path's), instead of each step's own choice.
    let run = |fused: bool, forced: Option<&Vec<Vec<u32>>>| {
        let pass = |segments: &mut [Segment<'_>]| {
            let logits = if fused {
                d.forward(segments)
            } else {
                d.forward_general(segments)
            };
            logits.unwrap().to_vec2::<f32>().unwrap()
        };
        let mut prefix = d.new_cache();
        let first = pass(&mut [Segment {
            cache: &mut prefix,
            tokens: &prompt,
        }]);
        let prefix = prefix.freeze().unwrap();
        let mut alone = d.new_cache();
        let first_alone = pass(&mut [Segment {
            cache: &mut alone,
            tokens: &prompt[3..],
        }]);
        let mut caches = [
            alone,
            codeplan_model::cache::SequenceCache::continuing(prefix.clone()),
            codeplan_model::cache::SequenceCache::continuing(prefix),
        ];
        let argmax = codeplan_model::sampling::argmax;
        // The second continuation starts from the runner-up, so the two differ.
        let mut runner_up = first[0].clone();
        runner_up[argmax(&first[0]) as usize] = f32::NEG_INFINITY;
        let mut next = vec![
            argmax(&first_alone[0]),
            argmax(&first[0]),
            argmax(&runner_up),
        ];
        let (mut tokens, mut all_logits) = (vec![next.clone()], Vec::new());
        for step in 0..40 {
            if let Some(forced) = forced {
                next = forced[step].clone();
            }
            let fed: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let mut segments: Vec<Segment<'_>> = caches
                .iter_mut()
                .zip(&fed)
                .map(|(cache, tokens)| Segment { cache, tokens })
                .collect();
            let logits = pass(&mut segments);
            next = logits.iter().map(|l| argmax(l)).collect();
            tokens.push(next.clone());
            all_logits.push(logits);
        }
        (tokens, all_logits)
    };
    let (general_tokens, general_logits) = run(false, None);
    let (fused_tokens, fused_logits) = run(true, Some(&general_tokens));
    let mut report = Vec::new();
    for seq in 0..3 {
        let (mut worst, mut same, mut partings) = (0f32, 0, Vec::new());
        for step in 0..fused_logits.len() {
            let (a, b) = (&fused_logits[step][seq], &general_logits[step][seq]);
            let diff = a
                .iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            worst = worst.max(diff);
            let (ours, theirs) = (fused_tokens[step + 1][seq], general_tokens[step + 1][seq]);
            if ours == theirs {
                same += 1;
            } else {
                partings.push((b[theirs as usize] - b[ours as usize]).abs());
            }
        }
        report.push(format!(
            "sequence {seq}: {same} of {} greedy choices equal, max |Δlogit| {worst:.2e}, \
             gaps where not: {partings:.3?}",
            fused_logits.len()
        ));
    }
    let report = report.join("; ");
    eprintln!("{name} {precision:?} fused vs general: {report}");
    for seq in 0..3 {
        let worst = fused_logits
            .iter()
            .zip(&general_logits)
            .flat_map(|(a, b)| a[seq].iter().zip(&b[seq]).map(|(p, q)| (p - q).abs()))
            .fold(0f32, f32::max);
        let chosen = |t: &Vec<Vec<u32>>| t.iter().skip(1).map(|s| s[seq]).collect::<Vec<_>>();
        let (ours, theirs) = (chosen(&fused_tokens), chosen(&general_tokens));
        match precision {
            // Without 8-bit activations the two paths differ only in summation order.
            Precision::F32 => {
                assert!(worst < 1e-3, "{name} {precision:?}: {report}");
                assert_eq!(ours, theirs, "{name} {precision:?}: {report}");
            }
            // With them, a last-bit difference can flip one activation's 8-bit rounding, which
            // moves SmolLM2's logits (large activation outliers) by up to about two (1.73 on
            // Zen 4 since Q4_1's minimums are summed apart, all 120 greedy choices still
            // equal): greedy choices may differ, but only at near-ties, and at most one step in
            // ten.
            Precision::Native => {
                assert!(worst < 2.5, "{name} {precision:?}: {report}");
                for (step, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    let logits = &general_logits[step][seq];
                    let gap = (logits[*a as usize] - logits[*b as usize]).abs();
                    assert!(gap < 0.35, "{name} {precision:?} step {step}: {report}");
                }
                let same = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
                assert!(same >= 36, "{name} {precision:?}: {report}");
            }
        }
    }
}

#[test]
fn fused_decode_step_matches_the_general_path_smollm2() {
    fused_step_matches_general_path("smollm2-135m", Precision::F32);
    fused_step_matches_general_path("smollm2-135m", Precision::Native);
}

#[test]
fn fused_decode_step_matches_the_general_path_qwen() {
    fused_step_matches_general_path("qwen2.5-coder-0.5b", Precision::F32);
    fused_step_matches_general_path("qwen2.5-coder-0.5b", Precision::Native);
}
