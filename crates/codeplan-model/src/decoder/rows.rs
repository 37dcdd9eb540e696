//! The decode step's elementwise operations on plain row-major slices: RMSNorm, RoPE and
//! SiLU·mul (attention is in [`super::attend`]).
//!
//! They compute what the candle operations of the general path compute (same formulas, f32),
//! without a tensor allocation or a dispatch each: for a 135M model those fixed costs, not the
//! arithmetic, were most of a decode step.

use crate::config::RopeStyle;

/// `out = x / sqrt(mean(x²) + eps) · weight` for every row of `x` (rows `weight.len()` wide),
/// as `candle_nn::ops::rms_norm`.
pub(super) fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let sum2: f32 = row.iter().map(|v| v * v).sum();
        let m = (sum2 / d as f32 + eps).sqrt();
        for ((o, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *o = *v / m * *w;
        }
    }
}

/// Rotates every head of every row in place; row `r` uses `cos`/`sin` values
/// `[r · head_dim / 2, (r + 1) · head_dim / 2)` (its position's).
pub(super) fn rope(x: &mut [f32], head_dim: usize, style: RopeStyle, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let rows = cos.len() / half;
    let width = x.len() / rows;
    for (r, row) in x.chunks_exact_mut(width).enumerate() {
        let (cos, sin) = (&cos[r * half..][..half], &sin[r * half..][..half]);
        for head in row.chunks_exact_mut(head_dim) {
            match style {
                RopeStyle::Interleaved => {
                    for ((pair, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * c - b * s;
                        pair[1] = a * s + b * c;
                    }
                }
                RopeStyle::Halves => {
                    let (lo, hi) = head.split_at_mut(half);
                    for (((a, b), c), s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
                        let (x0, x1) = (*a, *b);
                        *a = x0 * c - x1 * s;
                        *b = x0 * s + x1 * c;
                    }
                }
            }
        }
    }
}

/// `gate = silu(gate) · up`, elementwise.
pub(super) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}
