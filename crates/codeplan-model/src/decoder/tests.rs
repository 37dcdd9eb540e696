//! The fused step's operations against the candle operations of the general path, on
//! random-looking inputs.

use candle_core::{Device, Tensor};

use super::attend::{self, Heads};
use super::rows;
use crate::cache::SequenceCache;
use crate::config::{DecoderConfig, RopeStyle};

/// Fixed pseudo-random values in [-scale, scale).
fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 * 2.0 - 1.0)
        .map(|v| v * scale)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn config(heads: usize, kv_heads: usize, head_dim: usize) -> DecoderConfig {
    DecoderConfig {
        arch: "llama".into(),
        vocab_size: 16,
        hidden_size: heads * head_dim,
        intermediate_size: 8,
        num_layers: 1,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_style: RopeStyle::Interleaved,
        context_length: 4096,
        attention_bias: false,
    }
}

#[test]
fn rms_norm_silu_and_rope_match_candle() {
    let dev = Device::Cpu;
    let (m, d) = (3, 96);
    let x = values(m * d, 1, 4.0);
    let w = values(d, 2, 1.5);
    let mut got = vec![0f32; m * d];
    rows::rms_norm(&x, &w, 1e-5, &mut got);
    let xt = Tensor::from_vec(x.clone(), (m, d), &dev).unwrap();
    let wt = Tensor::from_vec(w, d, &dev).unwrap();
    let want = candle_nn::ops::rms_norm(&xt, &wt, 1e-5).unwrap();
    assert!(max_diff(&got, &want.flatten_all().unwrap().to_vec1().unwrap()) < 1e-5);

    let up = values(m * d, 3, 2.0);
    let mut gate = x.clone();
    rows::silu_mul(&mut gate, &up);
    let upt = Tensor::from_vec(up, (m, d), &dev).unwrap();
    let want = (candle_nn::ops::silu(&xt).unwrap() * upt).unwrap();
    assert!(max_diff(&gate, &want.flatten_all().unwrap().to_vec1().unwrap()) < 1e-5);

    // Three rows at different positions, three heads of 32.
    let (heads, hd) = (3, 32);
    for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
        let mut got = x.clone();
        let positions = [0usize, 7, 513];
        let angle = |p: usize, i: usize| p as f32 / 10_000f32.powf(2.0 * i as f32 / hd as f32);
        let cos: Vec<f32> = positions
            .iter()
            .flat_map(|&p| (0..hd / 2).map(move |i| angle(p, i).cos()))
            .collect();
        let sin: Vec<f32> = positions
            .iter()
            .flat_map(|&p| (0..hd / 2).map(move |i| angle(p, i).sin()))
            .collect();
        rows::rope(&mut got, hd, style, &cos, &sin);
        for r in 0..m {
            let row = Tensor::from_slice(&x[r * d..(r + 1) * d], (1, heads, 1, hd), &dev).unwrap();
            let c = Tensor::from_slice(&cos[r * hd / 2..(r + 1) * hd / 2], (1, hd / 2), &dev);
            let s = Tensor::from_slice(&sin[r * hd / 2..(r + 1) * hd / 2], (1, hd / 2), &dev);
            let (c, s) = (c.unwrap(), s.unwrap());
            let want = match style {
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&row, &c, &s),
                RopeStyle::Halves => candle_nn::rotary_emb::rope(&row, &c, &s),
            }
            .unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                max_diff(&got[r * d..(r + 1) * d], &want) < 1e-5,
                "{style:?}"
            );
        }
    }
}

/// Three sequences (with and without a shared prefix, lengths across task spans) against the
/// general path's attention.
#[test]
fn attention_matches_the_general_path() {
    let dev = Device::Cpu;
    let c = config(6, 2, 32);
    let (hd, kvw, qw) = (
        c.head_dim,
        c.num_kv_heads * c.head_dim,
        c.num_heads * c.head_dim,
    );
    let scale = 1.0 / (hd as f64).sqrt();
    let filled = |len: usize, seed: usize| {
        let mut cache = SequenceCache::new(1);
        if len > 0 {
            cache.append(
                0,
                &values(len * kvw, seed, 2.0),
                &values(len * kvw, seed + 1, 1.0),
                len,
            );
            cache.advance(len);
        }
        cache
    };
    let prefix = filled(300, 10).freeze().unwrap();
    let mut caches = [
        SequenceCache::continuing(prefix.clone()),
        filled(0, 0),
        filled(129, 20),
    ];
    caches[0].append(0, &values(5 * kvw, 30, 2.0), &values(5 * kvw, 31, 1.0), 5);
    caches[0].advance(5);
    // This step's new row for every sequence.
    for (i, cache) in caches.iter_mut().enumerate() {
        cache.append(0, &values(kvw, 40 + i, 2.0), &values(kvw, 50 + i, 1.0), 1);
    }
    let q = values(caches.len() * qw, 60, 3.0);
    let mut got = vec![0f32; q.len()];
    let refs: Vec<&SequenceCache> = caches.iter().collect();
    let shape = Heads {
        heads: c.num_heads,
        kv_heads: c.num_kv_heads,
        head_dim: hd,
        scale: scale as f32,
    };
    attend::attention(&refs, 0, shape, &q, &mut got);
    let heads_first = |rows: &[f32]| {
        Tensor::from_slice(rows, (rows.len() / kvw, c.num_kv_heads, hd), &dev)
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    for (i, cache) in caches.iter().enumerate() {
        let qi = Tensor::from_slice(&q[i * qw..(i + 1) * qw], (c.num_heads, 1, hd), &dev).unwrap();
        let prefix = cache
            .prefix_kv(0)
            .map(|(k, v)| (heads_first(k), heads_first(v)));
        let (k, v) = cache.own_kv(0);
        let (k, v) = (heads_first(k), heads_first(v));
        let start = cache.own_len();
        let want = super::attention(&c, &qi, prefix.as_ref(), &k, &v, start, scale).unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let diff = max_diff(&got[i * qw..(i + 1) * qw], &want);
        assert!(diff < 1e-5, "sequence {i}: max |Δ| = {diff}");
    }
}
