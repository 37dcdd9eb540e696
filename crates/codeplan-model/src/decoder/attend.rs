//! Attention of one new row per sequence against its key/value cache, read in place.
//!
//! Each task takes one sequence over a span of positions and serves every query head, so each
//! cached row is read from memory once per step, whole and in order (at 512+ positions the
//! cache no longer fits the core's caches: reading it once per query head, or one head's
//! slice of each row at a time, gave attention a third of a SmolLM2 decode step's CPU time
//! under `perf`). Spans split long contexts across threads; their partial softmax sums are
//! merged afterwards (as flash-decoding does).

use std::sync::Mutex;

use crate::cache::SequenceCache;

/// Positions per task: long enough to amortise a task, short enough that one sequence's
/// attention spreads evenly over the threads.
const SPAN: usize = 64;

/// Partial sums kept per dot product: one 512-bit register of f32.
const LANES: usize = 16;

/// The shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Heads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each shared by `heads / kv_heads` adjacent query heads).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Factor applied to the scores (1 / √head_dim).
    pub scale: f32,
}

/// One task: a sequence over positions `[p0, p1)`.
#[derive(Clone, Copy)]
struct Task {
    seq: usize,
    p0: usize,
    p1: usize,
}

/// What a task leaves for the merge, per query head: the largest score, the sum of
/// `exp(score − max)`, and the values weighted by those exponentials.
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    acc: Vec<f32>,
}

/// Attention of each sequence's newest row `q` (`(sequences, heads · head_dim)`) against its
/// layer-`layer` keys and values (the shared prefix's, then its own, the newest included),
/// written to `out` (same shape as `q`). One parallel dispatch.
pub(super) fn attention(
    caches: &[&SequenceCache],
    layer: usize,
    shape: Heads,
    q: &[f32],
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let group = shape.heads / shape.kv_heads;
    let width = shape.kv_heads * hd;
    let heads = shape.heads;
    let mut tasks = Vec::new();
    for (seq, cache) in caches.iter().enumerate() {
        let len = cache.prefix_kv(layer).map_or(0, |(k, _)| k.len() / width)
            + cache.own_kv(layer).0.len() / width;
        for p0 in (0..len).step_by(SPAN) {
            tasks.push(Task {
                seq,
                p0,
                p1: (p0 + SPAN).min(len),
            });
        }
    }
    // Each task fills its own slot; the locks are never contended, they only let a task on
    // another thread write its slot safely.
    let partials: Vec<Mutex<Option<Partial>>> = tasks.iter().map(|_| Mutex::new(None)).collect();
    let run = |i: usize| {
        let t = tasks[i];
        let cache = caches[t.seq];
        let qs = &q[t.seq * heads * hd..][..heads * hd];
        let parts = [cache.prefix_kv(layer), Some(cache.own_kv(layer))];
        let n = t.p1 - t.p0;
        // scores[h * n + p]: query head h against position p0 + p.
        let mut scores = vec![0f32; heads * n];
        for_rows(&parts, 0, width, t.p0, t.p1, |p, row| {
            for (kv, k) in row.chunks_exact(hd).enumerate() {
                for h in kv * group..(kv + 1) * group {
                    scores[h * n + p - t.p0] = dot(&qs[h * hd..(h + 1) * hd], k) * shape.scale;
                }
            }
        });
        let mut part = Partial {
            max: vec![0.0; heads],
            sum: vec![0.0; heads],
            acc: vec![0.0; heads * hd],
        };
        for (h, s) in scores.chunks_exact_mut(n).enumerate() {
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for v in s.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            part.max[h] = max;
            part.sum[h] = sum;
        }
        for_rows(&parts, 1, width, t.p0, t.p1, |p, row| {
            for (h, acc) in part.acc.chunks_exact_mut(hd).enumerate() {
                let w = scores[h * n + p - t.p0];
                let v = &row[h / group * hd..(h / group + 1) * hd];
                for (a, x) in acc.iter_mut().zip(v) {
                    *a = w.mul_add(*x, *a);
                }
            }
        });
        *partials[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(part);
    };
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| range.for_each(run));
    merge(&tasks, partials, shape, out);
}

/// Calls `f(p, row)` for positions `[p0, p1)` of the concatenation of `parts` (prefix, own),
/// with `row` the `which`-th (0 keys, 1 values) tensor's row of `width` values.
fn for_rows(
    parts: &[Option<(&[f32], &[f32])>; 2],
    which: usize,
    width: usize,
    p0: usize,
    p1: usize,
    mut f: impl FnMut(usize, &[f32]),
) {
    let mut start = 0;
    for (k, v) in parts.iter().flatten() {
        let rows = if which == 0 { k } else { v };
        let len = rows.len() / width;
        let (a, b) = (p0.max(start), p1.min(start + len));
        if a < b {
            for (i, row) in rows[(a - start) * width..(b - start) * width]
                .chunks_exact(width)
                .enumerate()
            {
                f(a + i, row);
            }
        }
        start += len;
    }
}

/// Combines the spans of each sequence into the softmax-weighted sum of every query head:
/// `Σ_spans e^(max_s − M) acc_s / Σ_spans e^(max_s − M) sum_s`.
fn merge(tasks: &[Task], partials: Vec<Mutex<Option<Partial>>>, shape: Heads, out: &mut [f32]) {
    let hd = shape.head_dim;
    let parts: Vec<Partial> = partials
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every task ran")
        })
        .collect();
    let mut i = 0;
    while i < tasks.len() {
        let seq = tasks[i].seq;
        let end = i + tasks[i..].iter().take_while(|t| t.seq == seq).count();
        for h in 0..shape.heads {
            let dst = &mut out[(seq * shape.heads + h) * hd..][..hd];
            let max = parts[i..end]
                .iter()
                .map(|p| p.max[h])
                .fold(f32::NEG_INFINITY, f32::max);
            dst.fill(0.0);
            let mut total = 0f32;
            for p in &parts[i..end] {
                let w = (p.max[h] - max).exp();
                total += w * p.sum[h];
                for (d, a) in dst.iter_mut().zip(&p.acc[h * hd..(h + 1) * hd]) {
                    *d = w.mul_add(*a, *d);
                }
            }
            let inv = 1.0 / total;
            dst.iter_mut().for_each(|d| *d *= inv);
        }
        i = end;
    }
}

/// `a · b` (equal lengths), in [`LANES`] independent partial sums added pairwise (one running
/// sum would be a chain of dependent additions).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut w = LANES / 2;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    // Values past the last whole chunk (none when the head width is a multiple of LANES).
    let tail = a.len() / LANES * LANES;
    acc[0]
        + a[tail..]
            .iter()
            .zip(&b[tail..])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}
