//! Rotary position embeddings in the Hugging Face ("halves") pairing: dimension `i` of a head
//! rotates with dimension `i + head_dim/2`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_slice, ROW_CHUNK};

/// cos/sin of every position's angles, `(positions, head_dim/2)` each.
#[derive(Debug)]
pub struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Tables for positions `0..max_positions` with base frequency `theta`, computed as
    /// codeplan-model's inference path computes them (f32), so both see the same angles.
    pub fn new(head_dim: usize, theta: f32, max_positions: usize) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / theta.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Positions the table covers.
    pub fn max_positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }
}

struct Rope {
    table: Arc<RopeTable>,
    positions: Arc<Vec<u32>>,
}

/// Rotates `x` `(tokens, heads·head_dim)`; token `t` sits at `positions[t]`.
pub fn rope(x: &Tensor, table: &Arc<RopeTable>, positions: &Arc<Vec<u32>>) -> Result<Tensor> {
    let (tokens, width) = x.dims2()?;
    if tokens != positions.len() || !width.is_multiple_of(2 * table.half) {
        candle_core::bail!(
            "rope: {tokens}×{width} does not fit {} positions of head_dim {}",
            positions.len(),
            2 * table.half
        );
    }
    if let Some(&p) = positions.iter().max() {
        if p as usize >= table.max_positions() {
            candle_core::bail!("rope: position {p} beyond the table");
        }
    }
    x.contiguous()?.apply_op1(Rope {
        table: table.clone(),
        positions: positions.clone(),
    })
}

impl Rope {
    /// Rotates every token by +angle (`sign` 1) or −angle (`sign` −1, the transpose).
    fn rotate(&self, x: &[f32], width: usize, sign: f32) -> Vec<f32> {
        let half = self.table.half;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(width * ROW_CHUNK)
            .zip(x.par_chunks(width * ROW_CHUNK))
            .enumerate()
            .for_each(|(chunk, (ys, xs))| {
                for (r, (yr, xr)) in ys.chunks_mut(width).zip(xs.chunks(width)).enumerate() {
                    let p = self.positions[chunk * ROW_CHUNK + r] as usize;
                    let cos = &self.table.cos[p * half..(p + 1) * half];
                    let sin = &self.table.sin[p * half..(p + 1) * half];
                    for (yh, xh) in yr.chunks_mut(2 * half).zip(xr.chunks(2 * half)) {
                        let (x1, x2) = xh.split_at(half);
                        let (y1, y2) = yh.split_at_mut(half);
                        for i in 0..half {
                            let (c, s) = (cos[i], sign * sin[i]);
                            y1[i] = x1[i] * c - x2[i] * s;
                            y2[i] = x2[i] * c + x1[i] * s;
                        }
                    }
                }
            });
        y
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let width = l.dims()[1];
        Ok((
            CpuStorage::F32(self.rotate(x, width, 1.0)),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let width = x.dims()[1];
        let dx = with_slice(grad, self.name(), |g| self.rotate(g, width, -1.0))?;
        Ok(Some(tensor(dx, x.shape().clone())?))
    }
}
