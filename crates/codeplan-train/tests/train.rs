//! The training loop on real data: the loss goes down, validation and checkpoints happen, and
//! bad input is refused before any training starts.

mod common;

use std::path::PathBuf;

use codeplan_data::prompt::Task;
use codeplan_model::{DecoderConfig, RopeStyle};
use codeplan_train::base::BaseWeights;
use codeplan_train::config::{ModeKind, TrainConfig};
use codeplan_train::data::prepare;
use codeplan_train::optim::LrSchedule;
use codeplan_train::trainer::{Event, Trainer};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// A tiny random decoder over the real tokenizer's vocabulary.
fn tiny(vocab: usize) -> DecoderConfig {
    DecoderConfig {
        arch: "llama".into(),
        vocab_size: vocab,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        rope_style: RopeStyle::Halves,
        context_length: 512,
        attention_bias: false,
    }
}

#[test]
fn a_few_hundred_updates_drive_the_loss_down() {
    let Some(model) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let plans = out.path().join("plans.jsonl");
    // Short plans for a few MBPP problems, in the plans-file shape.
    std::fs::write(
        &plans,
        "{\"problem_id\": \"MbppEval/2\", \"plan\": \"1. Turn both lists into sets.\\n2. Return their intersection as a tuple.\"}\n\
         {\"problem_id\": \"MbppEval/3\", \"plan\": \"1. Return True for numbers below 2.\\n2. Try every divisor up to the square root.\"}\n",
    )
    .unwrap();
    let config = TrainConfig {
        model: model.clone(),
        data: vec![data("mbpp/mbpp_sanitized.jsonl")],
        plans: Some(plans),
        mode: ModeKind::Full,
        max_len: 160,
        batch_size: 2,
        max_steps: 200,
        lr: 3e-3,
        schedule: LrSchedule::Constant,
        warmup_steps: 5,
        val_fraction: 0.0,
        save_every: 100,
        out: out.path().join("run"),
        ..TrainConfig::default()
    };
    let mut prepared = prepare(&config).unwrap();
    // Twelve code examples and the two plans, so that 200 updates are many epochs.
    let is_plan = |e: &&codeplan_train::examples::Example| e.task == Task::Plan;
    let mut keep: Vec<_> = prepared
        .train
        .iter()
        .filter(|e| !is_plan(e))
        .take(12)
        .cloned()
        .collect();
    keep.extend(prepared.train.iter().filter(is_plan).cloned());
    assert_eq!(keep.len(), 14);
    prepared.train = std::sync::Arc::new(keep);
    let base = BaseWeights::random(tiny(prepared.tokenizer.vocab_size()), true, 7).unwrap();
    let mut trainer = Trainer::from_base(config.clone(), &prepared, base, false).unwrap();
    let mut losses = Vec::new();
    let mut checkpoints = Vec::new();
    trainer
        .run(&mut |e| match e {
            Event::Step(m) => losses.push((m.loss, m.task_loss.clone())),
            Event::Checkpoint { step, .. } => checkpoints.push(step),
            _ => {}
        })
        .unwrap();
    assert_eq!(losses.len(), 200);
    let first: f64 = losses[..10].iter().map(|l| l.0).sum::<f64>() / 10.0;
    let last: f64 = losses[190..].iter().map(|l| l.0).sum::<f64>() / 10.0;
    assert!(last < 0.5 * first, "loss went from {first:.3} to {last:.3}");
    assert!(
        losses.iter().any(|l| l.1.contains_key("plan")),
        "plan examples were trained"
    );
    assert_eq!(checkpoints, vec![100, 200]);
    let metrics = std::fs::read_to_string(config.out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 200);
    assert!(metrics.contains("\"train/loss_code\""));
}

#[test]
fn bad_input_is_refused_before_training() {
    let Some(model) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = TrainConfig {
        model: model.clone(),
        data: vec![data("mbpp/mbpp_sanitized.jsonl")],
        out: dir.path().join("run"),
        ..TrainConfig::default()
    };
    let err = |c: &TrainConfig| prepare(c).err().expect("refused").to_string();

    // The plan task without plans.
    assert!(err(&base).contains("--plans"), "{}", err(&base));

    // Plans naming problems the data does not have.
    let plans = dir.path().join("plans.jsonl");
    std::fs::write(&plans, "{\"problem_id\": \"MbppEval/2\", \"plan\": \"1. x\"}\n{\"problem_id\": \"nope-9\", \"plan\": \"1. y\"}\n").unwrap();
    let c = TrainConfig {
        plans: Some(plans.clone()),
        ..base.clone()
    };
    let e = err(&c);
    assert!(e.contains("plans.jsonl") && e.contains("nope-9"), "{e}");

    // An empty plan: file and line named.
    std::fs::write(&plans, "{\"problem_id\": \"MbppEval/2\", \"plan\": \"1. x\"}\n{\"problem_id\": \"MbppEval/3\", \"plan\": \"  \"}\n").unwrap();
    let e = err(&c);
    assert!(e.contains("plans.jsonl:2") && e.contains("empty"), "{e}");

    // A line that is not JSON.
    std::fs::write(
        &plans,
        "{\"problem_id\": \"MbppEval/2\", \"plan\": \"1. x\"}\nnot json\n",
    )
    .unwrap();
    let e = err(&c);
    assert!(e.contains("plans.jsonl:2") && e.contains("JSON"), "{e}");

    // An unknown task, a zero rank, a config-file typo.
    let c = TrainConfig {
        tasks: vec!["code".into(), "tests".into()],
        ..base.clone()
    };
    assert!(err(&c).contains("unknown task `tests`"));
    let c = TrainConfig {
        tasks: vec!["code".into()],
        lora_rank: 0,
        ..base.clone()
    };
    assert!(err(&c).contains("lora_rank"));
    let toml = dir.path().join("train.toml");
    std::fs::write(&toml, "max_step = 10\n").unwrap();
    let e = TrainConfig::from_toml_file(&toml)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train.toml") && e.contains("max_step"), "{e}");
}

/// Trained tensors of a trainer, by name.
fn tensors(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    t.model()
        .trainable()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn accumulating_two_micro_batches_equals_one_batch_of_both() {
    let Some(model) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        model,
        data: vec![data("mbpp/mbpp_sanitized.jsonl")],
        tasks: vec!["code".into()],
        mode: ModeKind::Full,
        max_len: 128,
        max_steps: 3,
        lr: 1e-3,
        warmup_steps: 0,
        val_fraction: 0.0,
        save_every: 0,
        out: dir.path().join("a"),
        ..TrainConfig::default()
    };
    let prepared = prepare(&config).unwrap();
    let vocab = prepared.tokenizer.vocab_size();
    let run = |batch_size: usize, grad_accum: usize, out: &str| {
        let c = TrainConfig {
            batch_size,
            grad_accum,
            out: dir.path().join(out),
            ..config.clone()
        };
        let base = BaseWeights::random(tiny(vocab), false, 3).unwrap();
        let mut t = Trainer::from_base(c, &prepared, base, false).unwrap();
        t.run(&mut |_| {}).unwrap();
        tensors(&t)
    };
    let one = run(2, 1, "one");
    let two = run(1, 2, "two");
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{name}: accumulated update differs by {worst}"
        );
    }
}

#[test]
fn after_training_generation_stops_by_itself() {
    let Some(model) = common::model_or_skip("smollm2-135m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        model,
        data: vec![data("mbpp/mbpp_sanitized.jsonl")],
        tasks: vec!["code".into()],
        lora_rank: 8,
        lora_dropout: 0.0,
        max_len: 160,
        max_steps: 30,
        lr: 2e-3,
        schedule: LrSchedule::Constant,
        warmup_steps: 2,
        val_fraction: 0.0,
        save_every: 0,
        out: dir.path().join("run"),
        ..TrainConfig::default()
    };
    let mut prepared = prepare(&config).unwrap();
    // Two short examples, learnt by heart in 30 updates.
    let mut short: Vec<_> = prepared
        .train
        .iter()
        .filter(|e| e.tokens.len() < 120)
        .take(2)
        .cloned()
        .collect();
    short.sort_by_key(|e| e.tokens.len());
    prepared.train = std::sync::Arc::new(short.clone());
    let mut trainer = Trainer::new(config, &prepared, false).unwrap();
    trainer.run(&mut |_| {}).unwrap();
    let student = codeplan_train::infer::inference_model(
        trainer.model(),
        "student",
        prepared.tokenizer.clone(),
        prepared.template.clone(),
    )
    .unwrap();
    let e = &short[0];
    let request = codeplan_model::model::TextRequest {
        n: 1,
        max_new_tokens: 200,
        sampling: codeplan_model::SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
        },
        stop: Vec::new(),
    };
    let out = student
        .complete(&e.tokens[..e.prompt_len], &request, |_, _| {})
        .unwrap();
    let c = &out.completions[0];
    assert_eq!(
        c.finish_reason,
        codeplan_model::FinishReason::Stop,
        "generation ran to the token limit: {:?}",
        c.text
    );
    // It stopped where the trained target (without its end-of-text token) ends.
    let target = e.tokens.len() - e.prompt_len - 1;
    assert!(
        c.tokens <= target + 5,
        "{} tokens for a {target}-token target: {:?}",
        c.tokens,
        c.text
    );
}
