//! Time of single quantised matmuls of a real GGUF: codeplan's kernels against candle's, on
//! the same weights and input.
//!
//! Usage: cargo bench -p codeplan-model --bench kernels -- MODEL.gguf TENSOR [TENSOR…]
//! For each tensor and row count (1, 8, 512) prints the best time of several runs of each
//! kernel (the minimum, because a shared machine only ever adds time) and their ratio.

use std::time::{Duration, Instant};

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{Device, Module, Tensor};
use codeplan_model::kernels::QuantMatrix;

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 2 {
        eprintln!("usage: kernels MODEL.gguf TENSOR [TENSOR…]");
        std::process::exit(2);
    }
    let mut file = std::fs::File::open(&args[0]).expect("model file");
    let content = gguf_file::Content::read(&mut file).expect("a GGUF file");
    for name in &args[1..] {
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .expect("tensor in the file");
        let dtype = q.dtype();
        let (n, k) = q.shape().dims2().expect("a matrix");
        let ours = QuantMatrix::from_qtensor_any(&q)
            .expect("readable")
            .expect("a type codeplan's kernels take");
        let candle = QMatMul::from_qtensor(q).expect("candle matmul");
        for m in [1usize, 8, 512] {
            if m > 8 && n > 10_000 {
                continue; // the head only ever multiplies the last rows
            }
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5)
                .collect();
            let x = Tensor::from_vec(x, (m, k), &Device::Cpu).expect("input");
            let runs = if m == 512 { 5 } else { 30 };
            let t_ours = best(runs, || {
                ours.forward(&x).expect("codeplan matmul");
            });
            let t_candle = best(runs, || {
                candle.forward(&x).expect("candle matmul");
            });
            println!(
                "{name:24} {dtype:?} ({n}x{k}) m={m:3}: codeplan {:9.3} ms  candle {:9.3} ms  speed-up {:5.2}x",
                t_ours.as_secs_f64() * 1e3,
                t_candle.as_secs_f64() * 1e3,
                t_candle.as_secs_f64() / t_ours.as_secs_f64()
            );
        }
    }
}
