//! Causal grouped-query attention over packed sequences, with a backward pass that recomputes
//! the attention weights instead of keeping a `T×T` matrix per head alive until backward.
//!
//! A token attends to the tokens before it (and itself) in the same row that carry the same
//! segment id, so several documents packed into one row do not see each other.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{matmul, slice, tensor, with_slice, Stored};

/// The layout of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Rows of the batch.
    pub batch: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

struct Attention {
    shape: AttentionShape,
    segments: Arc<Vec<u32>>,
}

/// Causal attention of `q` `(batch·seq, heads·head_dim)` over `k`, `v`
/// `(batch·seq, kv_heads·head_dim)`; `segments[t]` is token `t`'s document within its row.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    shape: AttentionShape,
    segments: &Arc<Vec<u32>>,
) -> Result<Tensor> {
    let s = shape;
    let tokens = s.batch * s.seq_len;
    if q.dims() != [tokens, s.heads * s.head_dim]
        || k.dims() != [tokens, s.kv_heads * s.head_dim]
        || v.dims() != k.dims()
        || segments.len() != tokens
        || s.kv_heads == 0
        || !s.heads.is_multiple_of(s.kv_heads)
    {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?}, {} segment ids do not fit {s:?}",
            q.dims(),
            k.dims(),
            v.dims(),
            segments.len()
        );
    }
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attention {
            shape,
            segments: segments.clone(),
        },
    )
}

/// One head's rows gathered into a contiguous `(seq, head_dim)` block.
fn gather(src: &[f32], s: &AttentionShape, b: usize, head: usize, heads: usize) -> Vec<f32> {
    let (t, d) = (s.seq_len, s.head_dim);
    let mut out = Vec::with_capacity(t * d);
    for i in 0..t {
        let row = (b * t + i) * heads * d + head * d;
        out.extend_from_slice(&src[row..row + d]);
    }
    out
}

/// Writes a `(seq, head_dim)` block back into head `head` of `dst`.
fn scatter(
    dst: &mut [f32],
    block: &[f32],
    s: &AttentionShape,
    b: usize,
    head: usize,
    heads: usize,
) {
    let (t, d) = (s.seq_len, s.head_dim);
    for i in 0..t {
        let row = (b * t + i) * heads * d + head * d;
        dst[row..row + d].copy_from_slice(&block[i * d..(i + 1) * d]);
    }
}

impl Attention {
    /// Attention weights `P (seq, seq)` of one (row, head): masked, scaled, softmaxed.
    fn probabilities(&self, q: &[f32], k: &[f32], b: usize) -> Vec<f32> {
        let (t, d) = (self.shape.seq_len, self.shape.head_dim);
        let scale = 1.0 / (d as f32).sqrt();
        let mut p = vec![0f32; t * t];
        matmul(
            &mut p,
            (t, t, d),
            q,
            Stored::AsIs,
            k,
            Stored::Transposed,
            false,
            false,
        );
        let seg = &self.segments[b * t..(b + 1) * t];
        for (i, row) in p.chunks_mut(t).enumerate() {
            let mut max = f32::NEG_INFINITY;
            for (j, v) in row.iter_mut().enumerate() {
                if j > i || seg[j] != seg[i] {
                    *v = f32::NEG_INFINITY;
                } else {
                    *v *= scale;
                    max = max.max(*v);
                }
            }
            let mut sum = 0f32;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
        p
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            slice(qs, ql, self.name())?,
            slice(ks, kl, self.name())?,
            slice(vs, vl, self.name())?,
        );
        let s = self.shape;
        let group = s.heads / s.kv_heads;
        let (t, d) = (s.seq_len, s.head_dim);
        let blocks: Vec<Vec<f32>> = (0..s.batch * s.heads)
            .into_par_iter()
            .map(|task| {
                let (b, h) = (task / s.heads, task % s.heads);
                let qh = gather(q, &s, b, h, s.heads);
                let kh = gather(k, &s, b, h / group, s.kv_heads);
                let vh = gather(v, &s, b, h / group, s.kv_heads);
                let p = self.probabilities(&qh, &kh, b);
                let mut o = vec![0f32; t * d];
                matmul(
                    &mut o,
                    (t, d, t),
                    &p,
                    Stored::AsIs,
                    &vh,
                    Stored::AsIs,
                    false,
                    false,
                );
                o
            })
            .collect();
        let mut out = vec![0f32; s.batch * t * s.heads * d];
        for (task, block) in blocks.iter().enumerate() {
            scatter(&mut out, block, &s, task / s.heads, task % s.heads, s.heads);
        }
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.shape;
        let group = s.heads / s.kv_heads;
        let (t, d) = (s.seq_len, s.head_dim);
        let scale = 1.0 / (d as f32).sqrt();
        // One task per (row, kv head): the query heads of a group add into the same dK, dV.
        let run = |q: &[f32], k: &[f32], v: &[f32], o: &[f32], go: &[f32]| {
            (0..s.batch * s.kv_heads)
                .into_par_iter()
                .map(|task| {
                    let (b, kvh) = (task / s.kv_heads, task % s.kv_heads);
                    let kh = gather(k, &s, b, kvh, s.kv_heads);
                    let vh = gather(v, &s, b, kvh, s.kv_heads);
                    let mut dk = vec![0f32; t * d];
                    let mut dv = vec![0f32; t * d];
                    let mut dqs = Vec::with_capacity(group);
                    for h in kvh * group..(kvh + 1) * group {
                        let qh = gather(q, &s, b, h, s.heads);
                        let oh = gather(o, &s, b, h, s.heads);
                        let goh = gather(go, &s, b, h, s.heads);
                        let p = self.probabilities(&qh, &kh, b);
                        // dV += Pᵀ dO
                        matmul(
                            &mut dv,
                            (t, d, t),
                            &p,
                            Stored::Transposed,
                            &goh,
                            Stored::AsIs,
                            true,
                            false,
                        );
                        // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dO ⊙ O)) · scale
                        let mut ds = vec![0f32; t * t];
                        matmul(
                            &mut ds,
                            (t, t, d),
                            &goh,
                            Stored::AsIs,
                            &vh,
                            Stored::Transposed,
                            false,
                            false,
                        );
                        for i in 0..t {
                            let delta: f32 = goh[i * d..(i + 1) * d]
                                .iter()
                                .zip(&oh[i * d..(i + 1) * d])
                                .map(|(a, b)| a * b)
                                .sum();
                            for j in 0..t {
                                let idx = i * t + j;
                                ds[idx] = p[idx] * (ds[idx] - delta) * scale;
                            }
                        }
                        let mut dq = vec![0f32; t * d];
                        matmul(
                            &mut dq,
                            (t, d, t),
                            &ds,
                            Stored::AsIs,
                            &kh,
                            Stored::AsIs,
                            false,
                            false,
                        );
                        matmul(
                            &mut dk,
                            (t, d, t),
                            &ds,
                            Stored::Transposed,
                            &qh,
                            Stored::AsIs,
                            true,
                            false,
                        );
                        dqs.push(dq);
                    }
                    (dqs, dk, dv)
                })
                .collect::<Vec<_>>()
        };
        let parts = with_slice(q, self.name(), |q| {
            with_slice(k, self.name(), |k| {
                with_slice(v, self.name(), |v| {
                    with_slice(res, self.name(), |o| {
                        with_slice(grad, self.name(), |go| run(q, k, v, o, go))
                    })
                })
            })
        })?????;
        let tokens = s.batch * t;
        let mut dq = vec![0f32; tokens * s.heads * d];
        let mut dk = vec![0f32; tokens * s.kv_heads * d];
        let mut dv = vec![0f32; tokens * s.kv_heads * d];
        for (task, (dqs, dkh, dvh)) in parts.iter().enumerate() {
            let (b, kvh) = (task / s.kv_heads, task % s.kv_heads);
            for (i, dqh) in dqs.iter().enumerate() {
                scatter(&mut dq, dqh, &s, b, kvh * group + i, s.heads);
            }
            scatter(&mut dk, dkh, &s, b, kvh, s.kv_heads);
            scatter(&mut dv, dvh, &s, b, kvh, s.kv_heads);
        }
        Ok((
            Some(tensor(dq, q.shape().clone())?),
            Some(tensor(dk, k.shape().clone())?),
            Some(tensor(dv, v.shape().clone())?),
        ))
    }
}
