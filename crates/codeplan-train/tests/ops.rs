//! Each fused op against (1) the same function composed from differentiable candle ops — values
//! and gradients through candle's autograd — and (2) finite differences of the fused op itself.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var, D};
use codeplan_train::ops::{
    causal_attention, frozen_linear, linear_cross_entropy, rms_norm, rope, swiglu, trained_linear,
    AttentionShape, LoraUpdate, RopeTable,
};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale)
        .collect()
}

fn var(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> Var {
    let n = dims.iter().product();
    Var::from_tensor(&Tensor::from_vec(uniform(rng, n, scale), dims, &Device::Cpu).unwrap())
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest |a − b| relative to the largest |b| (and at least 1e-3, so near-zero vectors
/// compare absolutely).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

/// A scalar probe of an op's output: `Σ out ⊙ R` for fixed random `R`.
struct Probe(Tensor);

impl Probe {
    fn new(rng: &mut ChaCha8Rng, dims: &[usize]) -> Self {
        let n = dims.iter().product();
        Probe(Tensor::from_vec(uniform(rng, n, 1.0), dims, &Device::Cpu).unwrap())
    }
    fn loss(&self, out: &Tensor) -> Tensor {
        (out * &self.0).unwrap().sum_all().unwrap()
    }
    fn value(&self, out: &Tensor) -> f64 {
        values(out)
            .iter()
            .zip(values(&self.0))
            .map(|(a, b)| *a as f64 * b as f64)
            .sum()
    }
}

/// Checks fused vs composed values and gradients, then the fused gradients against central
/// differences along one random direction per input.
fn check(
    name: &str,
    inputs: &[Var],
    fused: &dyn Fn(&[Tensor]) -> Tensor,
    composed: &dyn Fn(&[Tensor]) -> Tensor,
    probe: &Probe,
    tol: f32,
) {
    let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let out_f = fused(&xs);
    let out_c = composed(&xs);
    let d = rel_diff(&values(&out_f), &values(&out_c));
    assert!(
        d < 1e-4,
        "{name}: forward differs from the composition by {d}"
    );
    let gf = probe.loss(&out_f).backward().unwrap();
    let gc = probe.loss(&out_c).backward().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for (i, v) in inputs.iter().enumerate() {
        let a = gf
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"));
        let b = gc.get(v.as_tensor()).expect("composition has a gradient");
        let d = rel_diff(&values(a), &values(b));
        assert!(
            d < tol,
            "{name}: gradient of input {i} differs from autograd's by {d}"
        );

        // Central difference of the probe along a random direction u: (f(x+εu) − f(x−εu)) / 2ε.
        let u = uniform(&mut rng, v.elem_count(), 1.0);
        let analytic: f64 = values(a)
            .iter()
            .zip(&u)
            .map(|(g, u)| *g as f64 * *u as f64)
            .sum();
        let eps = 1e-2f32;
        let shifted = |sign: f32| {
            let x = values(v.as_tensor());
            let moved: Vec<f32> = x.iter().zip(&u).map(|(x, u)| x + sign * eps * u).collect();
            let mut args = xs.clone();
            args[i] = Tensor::from_vec(moved, v.dims(), &Device::Cpu).unwrap();
            probe.value(&fused(&args))
        };
        let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps as f64);
        let err = (numeric - analytic).abs() / analytic.abs().max(1e-2);
        assert!(
            err < 2e-2,
            "{name}: input {i} finite difference {numeric} vs gradient {analytic} (rel {err})"
        );
    }
}

#[test]
fn rms_norm_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = var(&mut rng, &[7, 24], 1.0);
    let w = var(&mut rng, &[24], 1.0);
    let probe = Probe::new(&mut rng, &[7, 24]);
    let eps = 1e-5;
    check(
        "rms_norm",
        &[x, w],
        &|a| rms_norm(&a[0], &a[1], eps).unwrap(),
        &|a| {
            let r = (a[0].sqr().unwrap().mean_keepdim(1).unwrap() + eps)
                .unwrap()
                .sqrt()
                .unwrap()
                .recip()
                .unwrap();
            a[0].broadcast_mul(&r)
                .unwrap()
                .broadcast_mul(&a[1])
                .unwrap()
        },
        &probe,
        1e-4,
    );
}

#[test]
fn rms_norm_skips_a_frozen_weight() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = var(&mut rng, &[3, 8], 1.0);
    let w = Tensor::ones(8, candle_core::DType::F32, &Device::Cpu).unwrap();
    let y = rms_norm(x.as_tensor(), &w, 1e-6).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some());
    assert!(grads.get(&w).is_none(), "a frozen weight got a gradient");
}

#[test]
fn swiglu_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let g = var(&mut rng, &[5, 33], 3.0);
    let u = var(&mut rng, &[5, 33], 1.0);
    let probe = Probe::new(&mut rng, &[5, 33]);
    check(
        "swiglu",
        &[g, u],
        &|a| swiglu(&a[0], &a[1]).unwrap(),
        &|a| {
            let sig = ((a[0].neg().unwrap().exp().unwrap() + 1.0).unwrap())
                .recip()
                .unwrap();
            ((&a[0] * sig).unwrap() * &a[1]).unwrap()
        },
        &probe,
        1e-4,
    );
}

/// RoPE in the halves pairing composed from narrow/cat.
fn rope_composed(
    x: &Tensor,
    heads: usize,
    table: &RopeTable,
    positions: &[u32],
    theta: f32,
) -> Tensor {
    let _ = table;
    let (n, width) = x.dims2().unwrap();
    let hd = width / heads;
    let half = hd / 2;
    let mut cos = Vec::new();
    let mut sin = Vec::new();
    for &p in positions {
        for i in 0..half {
            let f = 1.0 / theta.powf(2.0 * i as f32 / hd as f32);
            cos.push((p as f32 * f).cos());
            sin.push((p as f32 * f).sin());
        }
    }
    let cos = Tensor::from_vec(cos, (n, 1, half), &Device::Cpu).unwrap();
    let sin = Tensor::from_vec(sin, (n, 1, half), &Device::Cpu).unwrap();
    let x = x.reshape((n, heads, hd)).unwrap();
    let x1 = x.narrow(2, 0, half).unwrap();
    let x2 = x.narrow(2, half, half).unwrap();
    let y1 = (x1.broadcast_mul(&cos).unwrap() - x2.broadcast_mul(&sin).unwrap()).unwrap();
    let y2 = (x2.broadcast_mul(&cos).unwrap() + x1.broadcast_mul(&sin).unwrap()).unwrap();
    Tensor::cat(&[y1, y2], 2)
        .unwrap()
        .reshape((n, width))
        .unwrap()
}

#[test]
fn rope_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (heads, hd) = (3, 8);
    let positions = Arc::new(vec![0u32, 1, 2, 7, 3, 0, 100]);
    let table = Arc::new(RopeTable::new(hd, 10000.0, 128));
    let x = var(&mut rng, &[positions.len(), heads * hd], 1.0);
    let probe = Probe::new(&mut rng, &[positions.len(), heads * hd]);
    check(
        "rope",
        &[x],
        &|a| rope(&a[0], &table, &positions).unwrap(),
        &|a| rope_composed(&a[0], heads, &table, &positions, 10000.0),
        &probe,
        1e-4,
    );
}

/// Causal attention composed from matmul, an additive mask and a softmax built of exp/sum.
fn attention_composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    s: AttentionShape,
    seg: &[u32],
) -> Tensor {
    let (b, t, h, kvh, d) = (s.batch, s.seq_len, s.heads, s.kv_heads, s.head_dim);
    let group = h / kvh;
    let q = q
        .reshape((b, t, h, d))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    let expand = |x: &Tensor| {
        x.reshape((b, t, kvh, 1, d))
            .unwrap()
            .broadcast_as((b, t, kvh, group, d))
            .unwrap()
            .reshape((b, t, h, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (k, v) = (expand(k), expand(v));
    let mut mask = vec![0f32; b * t * t];
    for bi in 0..b {
        for i in 0..t {
            for j in 0..t {
                if j > i || seg[bi * t + j] != seg[bi * t + i] {
                    mask[bi * t * t + i * t + j] = -1e9;
                }
            }
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu).unwrap();
    let scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt())
        .unwrap()
        .broadcast_add(&mask)
        .unwrap();
    let max = scores.max_keepdim(D::Minus1).unwrap().detach();
    let e = scores.broadcast_sub(&max).unwrap().exp().unwrap();
    let p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
    p.matmul(&v)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b * t, h * d))
        .unwrap()
}

#[test]
fn attention_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let s = AttentionShape {
        batch: 2,
        seq_len: 6,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
    };
    // Row 0 packs two documents; row 1 is one document followed by padding.
    let seg = Arc::new(vec![0u32, 0, 0, 1, 1, 1, 0, 0, 0, 0, 9, 9]);
    let n = s.batch * s.seq_len;
    let q = var(&mut rng, &[n, s.heads * s.head_dim], 1.0);
    let k = var(&mut rng, &[n, s.kv_heads * s.head_dim], 1.0);
    let v = var(&mut rng, &[n, s.kv_heads * s.head_dim], 1.0);
    let probe = Probe::new(&mut rng, &[n, s.heads * s.head_dim]);
    check(
        "attention",
        &[q, k, v],
        &|a| causal_attention(&a[0], &a[1], &a[2], s, &seg).unwrap(),
        &|a| attention_composed(&a[0], &a[1], &a[2], s, &seg),
        &probe,
        1e-4,
    );
}

#[test]
fn frozen_linear_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = var(&mut rng, &[9, 20], 1.0);
    let w = Tensor::from_vec(uniform(&mut rng, 13 * 20, 1.0), (13, 20), &Device::Cpu).unwrap();
    let b = Tensor::from_vec(uniform(&mut rng, 13, 1.0), 13, &Device::Cpu).unwrap();
    let probe = Probe::new(&mut rng, &[9, 13]);
    check(
        "frozen_linear",
        std::slice::from_ref(&x),
        &|a| frozen_linear(&a[0], &w, Some(&b), None).unwrap(),
        &|a| {
            a[0].matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap()
        },
        &probe,
        1e-4,
    );
    let grads = frozen_linear(x.as_tensor(), &w, Some(&b), None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&w).is_none(), "a frozen weight got a gradient");
    assert!(grads.get(&b).is_none(), "a frozen bias got a gradient");
}

#[test]
fn lora_linear_matches_autograd_and_finite_differences() {
    for dropout in [false, true] {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (rows, inp, out, rank) = (7, 12, 10, 3);
        let x = var(&mut rng, &[rows, inp], 1.0);
        let a = var(&mut rng, &[rank, inp], 1.0);
        let b = var(&mut rng, &[out, rank], 1.0);
        let w =
            Tensor::from_vec(uniform(&mut rng, out * inp, 1.0), (out, inp), &Device::Cpu).unwrap();
        let mask: Option<Arc<Vec<f32>>> = dropout.then(|| {
            Arc::new(
                (0..rows * inp)
                    .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
                    .collect(),
            )
        });
        let mask_t = mask
            .as_ref()
            .map(|m| Tensor::from_vec(m.to_vec(), (rows, inp), &Device::Cpu).unwrap());
        let scale = 2.5f32;
        let probe = Probe::new(&mut rng, &[rows, out]);
        check(
            if dropout {
                "lora_linear+dropout"
            } else {
                "lora_linear"
            },
            &[x, a, b],
            &|t| {
                let update = LoraUpdate {
                    a: &t[1],
                    b: &t[2],
                    scale,
                    dropout_mask: mask.clone(),
                };
                frozen_linear(&t[0], &w, None, Some(update)).unwrap()
            },
            &|t| {
                let xd = match &mask_t {
                    Some(m) => (&t[0] * m).unwrap(),
                    None => t[0].clone(),
                };
                let low = xd.matmul(&t[1].t().unwrap()).unwrap();
                let up = (low.matmul(&t[2].t().unwrap()).unwrap() * scale as f64).unwrap();
                (t[0].matmul(&w.t().unwrap()).unwrap() + up).unwrap()
            },
            &probe,
            1e-4,
        );
    }
}

#[test]
fn trained_linear_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = var(&mut rng, &[9, 20], 1.0);
    let w = var(&mut rng, &[13, 20], 1.0);
    let probe = Probe::new(&mut rng, &[9, 13]);
    check(
        "trained_linear",
        &[x, w],
        &|a| trained_linear(&a[0], &a[1]).unwrap(),
        &|a| a[0].matmul(&a[1].t().unwrap()).unwrap(),
        &probe,
        1e-4,
    );
}

/// Weighted cross-entropy of `h Wᵀ` composed from matmul and log-softmax.
fn cross_entropy_composed(h: &Tensor, w: &Tensor, targets: &[u32], weights: &[f32]) -> Tensor {
    let logits = h.matmul(&w.t().unwrap()).unwrap();
    let max = logits.max_keepdim(1).unwrap().detach();
    let shifted = logits.broadcast_sub(&max).unwrap();
    let lse = shifted
        .exp()
        .unwrap()
        .sum_keepdim(1)
        .unwrap()
        .log()
        .unwrap();
    let logp = shifted.broadcast_sub(&lse).unwrap();
    let idx = Tensor::from_vec(targets.to_vec(), (targets.len(), 1), &Device::Cpu).unwrap();
    let picked = logp.gather(&idx, 1).unwrap().squeeze(1).unwrap();
    let wt = Tensor::from_vec(weights.to_vec(), weights.len(), &Device::Cpu).unwrap();
    (picked * wt).unwrap().sum_all().unwrap().neg().unwrap()
}

#[test]
fn linear_cross_entropy_matches_autograd_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // More rows than one chunk (512 rows for a small vocabulary), so chunking is exercised;
    // some rows carry no loss.
    let (rows, d, vocab) = (700, 16, 37);
    let h = var(&mut rng, &[rows, d], 1.0);
    let w = var(&mut rng, &[vocab, d], 1.0);
    let targets = Arc::new(
        (0..rows)
            .map(|i| (i * 7 % vocab) as u32)
            .collect::<Vec<_>>(),
    );
    let weights = Arc::new(
        (0..rows)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    0.5 + (i % 5) as f32 * 0.1
                }
            })
            .collect::<Vec<_>>(),
    );
    let probe = Probe(Tensor::new(1.3f32, &Device::Cpu).unwrap());
    check(
        "linear_cross_entropy",
        &[h, w],
        &|a| {
            linear_cross_entropy(&a[0], &a[1], &targets, &weights, true)
                .unwrap()
                .loss
        },
        &|a| cross_entropy_composed(&a[0], &a[1], &targets, &weights),
        &probe,
        1e-4,
    );
}

#[test]
fn cross_entropy_reports_per_row_losses_and_rejects_bad_targets() {
    let h = Tensor::zeros((2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((5, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let out = linear_cross_entropy(
        &h,
        &w,
        &Arc::new(vec![1, 2]),
        &Arc::new(vec![1.0, 0.0]),
        false,
    )
    .unwrap();
    // Uniform logits over 5 tokens: CE = ln 5 for the weighted row, 0 for the other.
    assert!((out.per_row[0] - 5f32.ln()).abs() < 1e-6);
    assert_eq!(out.per_row[1], 0.0);
    let err = linear_cross_entropy(
        &h,
        &w,
        &Arc::new(vec![1, 7]),
        &Arc::new(vec![1.0, 1.0]),
        false,
    )
    .err()
    .expect("target 7 is outside a vocabulary of 5");
    assert!(err.to_string().contains("target 7 of row 1"), "{err}");
}
