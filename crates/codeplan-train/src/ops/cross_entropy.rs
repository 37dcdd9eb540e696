//! The output head and the cross-entropy loss in one op, a few rows at a time, so that the
//! `(tokens, vocab)` logits (600 MB for 1,024 tokens of Qwen2.5's 152k vocabulary) never exist.
//!
//! The loss is a weighted sum over rows, so its gradient is known while the logits of a chunk
//! are at hand: the forward pass computes it there and the backward pass only scales it by
//! the incoming gradient. Rows with weight zero (prompt tokens, padding) cost nothing.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{matmul, slice, tensor, Stored};

/// Bytes of logits that exist at one time: chunks of rows this large keep the head's weight
/// gradient update (`dW += dlogitsᵀ h`, which reads and writes all of `dW`) efficient while
/// staying far below the full `(tokens, vocab)` matrix.
const CHUNK_BYTES: usize = 64 << 20;

/// Rows per chunk for a vocabulary of `vocab` tokens: 32 to 512.
fn chunk_rows(vocab: usize) -> usize {
    (CHUNK_BYTES / (vocab.max(1) * 4)).clamp(32, 512)
}

/// What the forward pass leaves for the backward pass and for logging.
#[derive(Default)]
struct State {
    /// Unweighted cross-entropy of every row (0 where the weight is 0).
    per_row: Vec<f32>,
    /// ∂loss/∂hidden, `(rows, hidden)`.
    d_hidden: Vec<f32>,
    /// ∂loss/∂W, `(vocab, hidden)`, when W is trained.
    d_weight: Option<Vec<f32>>,
}

struct LinearCrossEntropy {
    targets: Arc<Vec<u32>>,
    weights: Arc<Vec<f32>>,
    with_grad: bool,
    /// Whether W is being trained (then its gradient is prepared too).
    head_trained: bool,
    state: Arc<Mutex<State>>,
}

/// The result of [`linear_cross_entropy`].
pub struct CrossEntropyOutput {
    /// `Σ_rows weight · CE` as a scalar tensor (differentiable when asked for).
    pub loss: Tensor,
    /// Unweighted cross-entropy of every row (0 for rows of weight 0), for per-task logging.
    pub per_row: Vec<f32>,
}

/// `Σ_t weights[t] · CE(hidden[t] · Wᵀ, targets[t])` for `hidden (tokens, d)` and the head
/// `w (vocab, d)`. With `with_grad`, the gradients for `hidden` (and for `w`, when it is being
/// trained) are prepared for the backward pass.
pub fn linear_cross_entropy(
    hidden: &Tensor,
    w: &Tensor,
    targets: &Arc<Vec<u32>>,
    weights: &Arc<Vec<f32>>,
    with_grad: bool,
) -> Result<CrossEntropyOutput> {
    let (rows, d) = hidden.dims2()?;
    let (vocab, wd) = w.dims2()?;
    if d != wd || targets.len() != rows || weights.len() != rows {
        candle_core::bail!(
            "cross-entropy: hidden {:?}, head {:?}, {} targets, {} weights",
            hidden.dims(),
            w.dims(),
            targets.len(),
            weights.len()
        );
    }
    if let Some((i, &t)) = targets
        .iter()
        .enumerate()
        .find(|(i, &t)| weights[*i] != 0.0 && t as usize >= vocab)
    {
        candle_core::bail!(
            "cross-entropy: target {t} of row {i} is outside the vocabulary ({vocab})"
        );
    }
    let state = Arc::new(Mutex::new(State::default()));
    let op = LinearCrossEntropy {
        targets: targets.clone(),
        weights: weights.clone(),
        with_grad,
        head_trained: with_grad && w.track_op(),
        state: state.clone(),
    };
    let loss = hidden.contiguous()?.apply_op2(&w.contiguous()?, op)?;
    let per_row = std::mem::take(&mut state.lock().expect("not poisoned").per_row);
    Ok(CrossEntropyOutput { loss, per_row })
}

impl CustomOp2 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = slice(hs, hl, self.name())?;
        let w = slice(ws, wl, self.name())?;
        let (rows, d) = (hl.dims()[0], hl.dims()[1]);
        let vocab = wl.dims()[0];
        let active: Vec<usize> = (0..rows).filter(|&r| self.weights[r] != 0.0).collect();
        let mut per_row = vec![0f32; rows];
        let mut d_hidden = if self.with_grad {
            vec![0f32; rows * d]
        } else {
            Vec::new()
        };
        let mut d_weight = self.head_trained.then(|| vec![0f32; vocab * d]);
        let mut loss = 0f64;
        let rows_per_chunk = chunk_rows(vocab);
        let mut logits = vec![0f32; rows_per_chunk.min(active.len().max(1)) * vocab];
        for chunk in active.chunks(rows_per_chunk) {
            let c = chunk.len();
            let mut hc = Vec::with_capacity(c * d);
            for &r in chunk {
                hc.extend_from_slice(&h[r * d..(r + 1) * d]);
            }
            let lg = &mut logits[..c * vocab];
            matmul(
                lg,
                (c, vocab, d),
                &hc,
                Stored::AsIs,
                w,
                Stored::Transposed,
                false,
                true,
            );
            // Each row: CE = logsumexp − logit[target]; its logits become weight·(softmax − onehot).
            let ce: Vec<f32> = lg
                .par_chunks_mut(vocab)
                .zip(chunk.par_iter())
                .map(|(row, &r)| {
                    let target = self.targets[r] as usize;
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
                    let lse = max + sum.ln();
                    let ce = lse - row[target];
                    if self.with_grad {
                        let wt = self.weights[r];
                        for v in row.iter_mut() {
                            *v = wt * (*v - lse).exp();
                        }
                        row[target] -= wt;
                    }
                    ce
                })
                .collect();
            for (&r, ce) in chunk.iter().zip(ce) {
                per_row[r] = ce;
                loss += (self.weights[r] * ce) as f64;
            }
            if self.with_grad {
                let mut dh = vec![0f32; c * d];
                matmul(
                    &mut dh,
                    (c, d, vocab),
                    lg,
                    Stored::AsIs,
                    w,
                    Stored::AsIs,
                    false,
                    true,
                );
                for (i, &r) in chunk.iter().enumerate() {
                    d_hidden[r * d..(r + 1) * d].copy_from_slice(&dh[i * d..(i + 1) * d]);
                }
                if let Some(dw) = d_weight.as_mut() {
                    matmul(
                        dw,
                        (vocab, d, c),
                        lg,
                        Stored::Transposed,
                        &hc,
                        Stored::AsIs,
                        true,
                        true,
                    );
                }
            }
        }
        let mut state = self.state.lock().expect("not poisoned");
        state.per_row = per_row;
        state.d_hidden = d_hidden;
        state.d_weight = d_weight;
        Ok((CpuStorage::F32(vec![loss as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !self.with_grad {
            candle_core::bail!("cross-entropy: backward of a loss computed without gradients");
        }
        let g = grad.to_vec0::<f32>()?;
        let mut state = self.state.lock().expect("not poisoned");
        let mut dh = std::mem::take(&mut state.d_hidden);
        dh.iter_mut().for_each(|v| *v *= g);
        let dw = match state.d_weight.take() {
            Some(mut dw) => {
                dw.iter_mut().for_each(|v| *v *= g);
                Some(tensor(dw, w.shape().clone())?)
            }
            None => None,
        };
        Ok((Some(tensor(dh, hidden.shape().clone())?), dw))
    }
}
