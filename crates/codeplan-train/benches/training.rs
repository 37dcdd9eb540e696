//! Training throughput of `codeplan train`'s update (forward, backward, clipping, AdamW) on a
//! fixed token file, for `scripts/bench/training.py`, which runs PyTorch on the same rows.
//!
//! cargo bench -p codeplan-train --bench training -- --model GGUF --mode full|lora \
//!     --data rows.json [--steps 10] [--warmup 2] [--batch 2]
//!
//! Prints one JSON line: tokens/s over the timed updates, each update's seconds, every loss.

use std::sync::Arc;
use std::time::Instant;

use codeplan_train::base::BaseWeights;
use codeplan_train::lora::{LoraSpec, LoraTarget};
use codeplan_train::model::{Mode, TokenBatch, TrainableModel};
use codeplan_train::optim::{AdamW, AdamWConfig};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Rows of the file as a batch: every position predicts the next token of its row.
fn batch(rows: &[Vec<u32>]) -> TokenBatch {
    let seq_len = rows[0].len();
    let n = rows.len() * seq_len;
    let trained = (rows.len() * (seq_len - 1)) as f32;
    let mut targets = vec![0u32; n];
    let mut weights = vec![0f32; n];
    for (r, row) in rows.iter().enumerate() {
        for t in 0..seq_len - 1 {
            targets[r * seq_len + t] = row[t + 1];
            weights[r * seq_len + t] = 1.0 / trained;
        }
    }
    TokenBatch {
        batch: rows.len(),
        seq_len,
        ids: rows.concat(),
        positions: Arc::new((0..n).map(|i| (i % seq_len) as u32).collect()),
        segments: Arc::new(vec![0; n]),
        targets: Arc::new(targets),
        weights: Arc::new(weights),
        plan_weights: None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = arg(&args, "--model").expect("--model GGUF");
    let mode = arg(&args, "--mode").unwrap_or_else(|| "full".into());
    let data = arg(&args, "--data").expect("--data rows.json");
    let steps: usize = arg(&args, "--steps").map_or(10, |s| s.parse().unwrap());
    let warmup: usize = arg(&args, "--warmup").map_or(2, |s| s.parse().unwrap());
    let per_batch: usize = arg(&args, "--batch").map_or(2, |s| s.parse().unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    let rows: Vec<Vec<u32>> = serde_json::from_value(json["rows"].clone()).unwrap();

    let base = BaseWeights::load(std::path::Path::new(&model)).unwrap();
    let mode_spec = match mode.as_str() {
        "full" => Mode::Full,
        "lora" => Mode::Lora(LoraSpec {
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: LoraTarget::ALL.to_vec(),
        }),
        other => panic!("unknown mode {other}"),
    };
    let model_t = TrainableModel::new(&base, mode_spec, 0).unwrap();
    drop(base);
    let mut opt = AdamW::new(model_t.trainable(), AdamWConfig::default());
    let lr = 1e-5;
    let (mut losses, mut seconds) = (Vec::new(), Vec::new());
    let mut tokens = 0usize;
    // forward, backward, clip (the gradient norm), optimizer (the update; as apply_update)
    let mut phases = [0f64; 4];
    for step in 0..warmup + steps {
        let chunk: Vec<Vec<u32>> = (0..per_batch)
            .map(|i| rows[(step * per_batch + i) % rows.len()].clone())
            .collect();
        let b = batch(&chunk);
        // The trainer's two calls, with the forward pass timed apart from the backward pass.
        let t = Instant::now();
        let out = model_t.loss(&b, None, true).unwrap();
        let t_forward = t.elapsed().as_secs_f64();
        let grads = out.loss.backward().unwrap();
        let list: Vec<candle_core::Tensor> = opt
            .slots
            .iter()
            .map(|s| grads.get(s.var.as_tensor()).unwrap().clone())
            .collect();
        drop(grads);
        let t_backward = t.elapsed().as_secs_f64() - t_forward;
        losses.push(out.loss.to_vec0::<f32>().unwrap());
        let norm_t = Instant::now();
        let norm = AdamW::grad_norm(&list).unwrap();
        let t_clip = norm_t.elapsed().as_secs_f64();
        let scale = if norm > 1.0 { 1.0 / norm } else { 1.0 };
        opt.update(&list, lr, scale).unwrap();
        let dt = t.elapsed().as_secs_f64();
        if step >= warmup {
            seconds.push(dt);
            tokens += b.ids.len();
            phases[0] += t_forward;
            phases[1] += t_backward;
            phases[2] += t_clip;
            phases[3] += dt - t_forward - t_backward - t_clip;
        }
        eprintln!("step {step}: loss {:.4} {dt:.2}s", losses[step]);
    }
    let total: f64 = seconds.iter().sum();
    println!(
        "{}",
        serde_json::json!({
            "engine": "codeplan", "mode": mode, "model": model, "batch": per_batch,
            "seq_len": rows[0].len(), "steps": steps, "tokens_per_s": tokens as f64 / total,
            "step_seconds": seconds, "losses": losses,
            "phase_seconds": {
                "forward": phases[0] / steps as f64, "backward": phases[1] / steps as f64,
                "clip": phases[2] / steps as f64, "optimizer": phases[3] / steps as f64,
            },
        })
    );
}
