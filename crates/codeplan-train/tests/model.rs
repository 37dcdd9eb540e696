//! The trainable model: same logits as the inference runtime, gradients for every trained
//! tensor and none for frozen ones, and finite-difference agreement on a tiny full model.

mod common;

use candle_core::{Tensor, Var};
use codeplan_model::{load_gguf, DecoderConfig, Precision, RopeStyle, Segment};
use codeplan_train::base::BaseWeights;
use codeplan_train::lora::{LoraSpec, LoraTarget};
use codeplan_train::model::{Mode, TokenBatch, TrainableModel};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn logits_equal_the_inference_runtime() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let base = BaseWeights::load(&path).unwrap();
    let model = TrainableModel::new(&base, Mode::Full, 0).unwrap();
    let (reference, _) = load_gguf(&path, Precision::F32).unwrap();
    assert_eq!(reference.config().rope_style, RopeStyle::Interleaved);
    let ids: Vec<u32> = vec![
        1, 504, 3458, 282, 253, 1789, 338, 4159, 30, 198, 1056, 6535, 1278, 42, 11,
    ];
    let ours = model.logits(&ids).unwrap();
    // The runtime gives logits after a segment's last token: feed one token at a time.
    let mut cache = reference.new_cache();
    let mut worst = 0f32;
    for (i, &id) in ids.iter().enumerate() {
        let theirs = reference
            .forward(&mut [Segment {
                tokens: &[id],
                cache: &mut cache,
            }])
            .unwrap();
        let a = values(&ours.get(i).unwrap());
        let b = values(&theirs.get(0).unwrap());
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst < 1e-4, "largest logit difference {worst}");
}

fn lora_all(rank: usize) -> Mode {
    Mode::Lora(LoraSpec {
        rank,
        alpha: 2.0 * rank as f32,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
    })
}

fn tiny_config(attention_bias: bool) -> DecoderConfig {
    DecoderConfig {
        arch: "qwen2".into(),
        vocab_size: 41,
        hidden_size: 16,
        intermediate_size: 24,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 4,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_style: RopeStyle::Halves,
        context_length: 64,
        attention_bias,
    }
}

/// Two rows of 7 tokens: row 0 packs two documents, row 1 ends in padding.
fn tiny_batch(vocab: u32) -> TokenBatch {
    let ids: Vec<u32> = (0..14).map(|i| (i * 5 + 3) % vocab).collect();
    let targets: Vec<u32> = (0..14).map(|i| (i * 11 + 1) % vocab).collect();
    TokenBatch {
        batch: 2,
        seq_len: 7,
        ids,
        positions: Arc::new(vec![0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4, 0, 0]),
        segments: Arc::new(vec![0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 9, 9]),
        targets: Arc::new(targets),
        weights: Arc::new(vec![
            0., 0.2, 0.2, 0.2, 0., 0.3, 0.3, 0., 0.1, 0.1, 0.1, 0.1, 0., 0.,
        ]),
        plan_weights: None,
    }
}

#[test]
fn a_separate_plan_head_starts_equal_and_trains_on_plan_rows_only() {
    let base = BaseWeights::random(tiny_config(false), true, 2).unwrap();
    let joint = tiny_batch(41);
    // Row 1 is the plan task: its weights move to `plan_weights`.
    let mut split = joint.clone();
    let (code, plan): (Vec<f32>, Vec<f32>) = joint
        .weights
        .iter()
        .enumerate()
        .map(|(i, &w)| if i >= 7 { (0.0, w) } else { (w, 0.0) })
        .unzip();
    split.weights = Arc::new(code);
    split.plan_weights = Some(Arc::new(plan));
    let mut model = TrainableModel::new(&base, lora_all(2), 0).unwrap();
    let single = model
        .loss(&joint, None, false)
        .unwrap()
        .loss
        .to_vec0::<f32>()
        .unwrap();
    model.add_plan_head().unwrap();
    let out = model.loss(&split, None, true).unwrap();
    let two = out.loss.to_vec0::<f32>().unwrap();
    assert!(
        (single - two).abs() < 1e-5,
        "{single} vs {two}: the copy starts equal"
    );
    let grads = out.loss.backward().unwrap();
    let plan_head = model.plan_head.as_ref().unwrap();
    let g = values(
        grads
            .get(plan_head.as_tensor())
            .expect("the plan head is trained"),
    );
    assert!(g.iter().any(|v| *v != 0.0));
    // The output head is frozen (LoRA) and tied to the embeddings: no gradient.
    assert!(grads.get(model.embed.tensor()).is_none());
    // Without plan rows the plan head gets nothing.
    let mut code_only = split.clone();
    code_only.plan_weights = Some(Arc::new(vec![0.0; 14]));
    let grads = model
        .loss(&code_only, None, true)
        .unwrap()
        .loss
        .backward()
        .unwrap();
    let g = values(grads.get(plan_head.as_tensor()).unwrap());
    assert!(g.iter().all(|v| *v == 0.0));
}

/// Gives every LoRA `B` random values (it starts at zero, which leaves `A` without gradient).
fn perturb_adapters(model: &TrainableModel) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (name, var) in model.trainable() {
        if name.ends_with("lora_B.weight") {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.next_u32() as f32 / u32::MAX as f32 - 0.5)
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                .unwrap();
        }
    }
}

fn assert_every_trained_tensor_gets_a_gradient(model: &TrainableModel, batch: &TokenBatch) {
    let loss = model.loss(batch, None, true).unwrap().loss;
    let grads = loss.backward().unwrap();
    let trained = model.trainable();
    assert!(!trained.is_empty());
    for (name, var) in &trained {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        let norm: f32 = values(g).iter().map(|v| v * v).sum();
        assert!(norm > 0.0, "{name} received an all-zero gradient");
    }
    // Frozen weights: nothing computed for them.
    if let Mode::Lora(_) = model.mode() {
        for l in &model.layers {
            for p in l.projections() {
                assert!(
                    grads.get(p.weight.tensor()).is_none(),
                    "{} got a gradient",
                    p.name
                );
            }
        }
        assert!(grads.get(model.embed.tensor()).is_none());
        assert!(grads.get(model.norm.tensor()).is_none());
    }
}

#[test]
fn every_trained_tensor_gets_a_gradient_and_frozen_ones_none() {
    for bias in [false, true] {
        for tied in [false, true] {
            let base = BaseWeights::random(tiny_config(bias), tied, 1).unwrap();
            let batch = tiny_batch(41);
            let full = TrainableModel::new(&base, Mode::Full, 0).unwrap();
            assert_every_trained_tensor_gets_a_gradient(&full, &batch);
            let lora = TrainableModel::new(&base, lora_all(2), 0).unwrap();
            perturb_adapters(&lora);
            assert_every_trained_tensor_gets_a_gradient(&lora, &batch);
        }
    }
}

#[test]
fn every_trained_tensor_gets_a_gradient_on_the_real_model() {
    let Some(path) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let base = BaseWeights::load(&path).unwrap();
    let vocab = base.config.vocab_size as u32;
    let full = TrainableModel::new(&base, Mode::Full, 0).unwrap();
    let mut batch = tiny_batch(vocab);
    batch.ids = batch.ids.iter().map(|i| i * 997 % vocab).collect();
    assert_every_trained_tensor_gets_a_gradient(&full, &batch);
    drop(full);
    let lora = TrainableModel::new(&base, lora_all(4), 0).unwrap();
    perturb_adapters(&lora);
    assert_every_trained_tensor_gets_a_gradient(&lora, &batch);
}

/// The loss's gradient on a tiny full model along a random direction in every trained tensor
/// at once, against a central difference of the loss.
#[test]
fn tiny_model_gradient_matches_finite_differences() {
    for mode in [Mode::Full, lora_all(3)] {
        let base = BaseWeights::random(tiny_config(true), false, 5).unwrap();
        let model = TrainableModel::new(&base, mode.clone(), 0).unwrap();
        perturb_adapters(&model);
        let batch = tiny_batch(41);
        let loss = model.loss(&batch, None, true).unwrap().loss;
        let grads = loss.backward().unwrap();
        let trained: Vec<(String, Var)> = model.trainable();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let dirs: Vec<Vec<f32>> = trained
            .iter()
            .map(|(_, v)| {
                (0..v.elem_count())
                    .map(|_| rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0)
                    .collect()
            })
            .collect();
        let analytic: f64 = trained
            .iter()
            .zip(&dirs)
            .map(|((_, v), u)| {
                let g = values(grads.get(v.as_tensor()).unwrap());
                g.iter()
                    .zip(u)
                    .map(|(g, u)| *g as f64 * *u as f64)
                    .sum::<f64>()
            })
            .sum();
        let originals: Vec<Tensor> = trained
            .iter()
            .map(|(_, v)| v.as_tensor().copy().unwrap())
            .collect();
        let eps = 1e-3f32;
        let at = |sign: f32| -> f64 {
            for (((_, v), u), o) in trained.iter().zip(&dirs).zip(&originals) {
                let moved: Vec<f32> = values(o)
                    .iter()
                    .zip(u)
                    .map(|(x, u)| x + sign * eps * u)
                    .collect();
                v.set(&Tensor::from_vec(moved, v.shape(), v.device()).unwrap())
                    .unwrap();
            }
            model
                .loss(&batch, None, false)
                .unwrap()
                .loss
                .to_vec0::<f32>()
                .unwrap() as f64
        };
        let numeric = (at(1.0) - at(-1.0)) / (2.0 * eps as f64);
        let rel = (numeric - analytic).abs() / analytic.abs();
        assert!(
            rel < 5e-3,
            "{mode:?}: finite difference {numeric} vs gradient {analytic}"
        );
    }
}
