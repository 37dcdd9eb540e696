//! The decode step (one new token per sequence), fused: the residual stream and every
//! intermediate stay in plain buffers reused by every layer, q/k/v and gate/up are one parallel
//! dispatch each, and attention reads the cache in place.
//!
//! The general path ([`Decoder::forward_general`]) runs some thirty candle operations per layer,
//! each allocating a tensor and some waking the worker threads; for SmolLM2-135M that fixed
//! cost, not the arithmetic, was most of a decode step. Many-row passes (prefill) keep the
//! general path, whose matrix products are batched.

use candle_core::{Device, IndexOp, Tensor};

use super::attend::{self, Heads};
use super::rows;
use super::{Decoder, Segment};
use crate::cache::SequenceCache;
use crate::error::Result;
use crate::kernels::{matmul_many, ActivationFormat, Activations};
use crate::weights::Linear;

/// Buffers of one step, sized for its rows and reused by every layer.
struct Scratch {
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    y: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
}

impl Decoder {
    /// The fused decode step: every segment feeds exactly one token (checked by the caller, as
    /// are token ids and context length). Returns the logits `(segments, vocab)`.
    pub(super) fn forward_step(&self, segments: &mut [Segment<'_>]) -> Result<Tensor> {
        let c = &self.config;
        let m = segments.len();
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (qw, kvw, ff) = (c.num_heads * hd, c.num_kv_heads * hd, c.intermediate_size);
        let dev = Device::Cpu;
        let ids: Vec<u32> = segments.iter().map(|s| s.tokens[0]).collect();
        let mut x: Vec<f32> = self
            .embed
            .forward(&Tensor::from_vec(ids, m, &dev)?)?
            .flatten_all()?
            .to_vec1()?;
        // RoPE angles of each segment's position, read from the same tables as the general
        // path so that both rotate by exactly the same values.
        let (mut cos, mut sin) = (
            Vec::with_capacity(m * hd / 2),
            Vec::with_capacity(m * hd / 2),
        );
        for s in segments.iter() {
            let p = s.cache.len();
            cos.extend(self.cos.i(p)?.to_vec1::<f32>()?);
            sin.extend(self.sin.i(p)?.to_vec1::<f32>()?);
        }
        let mut s = Scratch {
            h: vec![0.0; m * d],
            q: vec![0.0; m * qw],
            k: vec![0.0; m * kvw],
            v: vec![0.0; m * kvw],
            att: vec![0.0; m * qw],
            y: vec![0.0; m * d],
            gate: vec![0.0; m * ff],
            up: vec![0.0; m * ff],
        };
        let eps = c.rms_norm_eps as f32;
        let shape = Heads {
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: hd,
            scale: (1.0 / (hd as f64).sqrt()) as f32,
        };
        for (l, (block, norms)) in self.blocks.iter().zip(&self.norm_values).enumerate() {
            rows::rms_norm(&x, &norms.0, eps, &mut s.h);
            project(
                &s.h,
                d,
                &mut [
                    (&block.q, &mut s.q[..]),
                    (&block.k, &mut s.k[..]),
                    (&block.v, &mut s.v[..]),
                ],
            )?;
            rows::rope(&mut s.q, hd, c.rope_style, &cos, &sin);
            rows::rope(&mut s.k, hd, c.rope_style, &cos, &sin);
            for (i, seg) in segments.iter_mut().enumerate() {
                seg.cache
                    .append(l, &s.k[i * kvw..][..kvw], &s.v[i * kvw..][..kvw], 1);
            }
            let caches: Vec<&SequenceCache> = segments.iter().map(|s| &*s.cache).collect();
            attend::attention(&caches, l, shape, &s.q, &mut s.att);
            project(&s.att, qw, &mut [(&block.o, &mut s.y[..])])?;
            add(&mut x, &s.y);
            rows::rms_norm(&x, &norms.1, eps, &mut s.h);
            project(
                &s.h,
                d,
                &mut [(&block.gate, &mut s.gate[..]), (&block.up, &mut s.up[..])],
            )?;
            rows::silu_mul(&mut s.gate, &s.up);
            project(&s.gate, ff, &mut [(&block.down, &mut s.y[..])])?;
            add(&mut x, &s.y);
        }
        for seg in segments.iter_mut() {
            seg.cache.advance(1);
        }
        rows::rms_norm(&x, &self.final_norm_values, eps, &mut s.h);
        let mut logits = vec![0f32; m * c.vocab_size];
        project(&s.h, d, &mut [(&self.lm_head, &mut logits[..])])?;
        Ok(Tensor::from_vec(logits, (m, c.vocab_size), &dev)?)
    }
}

/// `x += y`.
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `out_i = x Wᵢᵀ + bᵢ` for layers sharing the input `x` (rows `k` wide): codeplan's kernels
/// in one dispatch over one quantisation of `x` per activation layout, candle's for the rest.
fn project(x: &[f32], k: usize, jobs: &mut [(&Linear, &mut [f32])]) -> Result<()> {
    let m = x.len() / k;
    for format in [ActivationFormat::Blocks, ActivationFormat::Super] {
        let mut own: Vec<_> = jobs
            .iter_mut()
            .filter_map(|(l, out)| {
                l.quant()
                    .filter(|q| q.input_format() == format)
                    .map(|q| (q, &mut **out))
            })
            .collect();
        if !own.is_empty() {
            matmul_many(&Activations::quantize(x, k, format), &mut own)?;
        }
    }
    let mut input = None;
    for (layer, out) in jobs.iter_mut() {
        if layer.quant().is_some() {
            if let Some(b) = layer.bias_values() {
                for row in out.chunks_exact_mut(b.len()) {
                    add(row, b);
                }
            }
            continue;
        }
        // candle's kernel (k-quants, dense f32 weights); its forward adds the bias.
        let x = match &input {
            Some(t) => t,
            None => input.insert(Tensor::from_slice(x, (m, k), &Device::Cpu)?),
        };
        let y = layer.forward(x)?.flatten_all()?.to_vec1::<f32>()?;
        out.copy_from_slice(&y);
    }
    Ok(())
}
