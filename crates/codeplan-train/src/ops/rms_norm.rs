//! RMSNorm: `y = x / sqrt(mean(x²) + ε) · w`, row by row.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_slice, ROW_CHUNK};

struct RmsNorm {
    eps: f32,
}

/// RMSNorm of the rows of `x` `(…, d)` with weight `w` `(d)`; differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(w, RmsNorm { eps: eps as f32 })
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ss: f32 = row.iter().map(|v| v * v).sum();
    1.0 / (ss / row.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(xs, xl, self.name())?;
        let w = slice(ws, wl, self.name())?;
        let d = w.len();
        if xl.dims().last() != Some(&d) {
            candle_core::bail!(
                "rms-norm: rows of {:?} do not match weight ({d})",
                xl.dims()
            );
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROW_CHUNK)
            .zip(x.par_chunks(d * ROW_CHUNK))
            .for_each(|(ys, xs)| {
                for (yr, xr) in ys.chunks_mut(d).zip(xs.chunks(d)) {
                    let r = inv_rms(xr, self.eps);
                    for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
                        *y = x * r * w;
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let want_w = w.track_op();
        let (dx, dw) = with_slice(x, self.name(), |x| {
            with_slice(w, self.name(), |w| {
                with_slice(grad, self.name(), |g| {
                    backward(x, w, g, d, self.eps, want_w)
                })
            })
        })???;
        let dx = tensor(dx, x.shape().clone())?;
        let dw = match dw {
            Some(dw) => Some(tensor(dw, d)?),
            None => None,
        };
        Ok((Some(dx), dw))
    }
}

/// dx = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/d; dw = Σ_rows g⊙x·r.
fn backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    d: usize,
    eps: f32,
    want_w: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut dx = vec![0f32; x.len()];
    let partial_dw: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * ROW_CHUNK)
        .zip(x.par_chunks(d * ROW_CHUNK))
        .zip(g.par_chunks(d * ROW_CHUNK))
        .map(|((dxs, xs), gs)| {
            let mut dw = if want_w { vec![0f32; d] } else { Vec::new() };
            for ((dxr, xr), gr) in dxs.chunks_mut(d).zip(xs.chunks(d)).zip(gs.chunks(d)) {
                let r = inv_rms(xr, eps);
                let dot: f32 = gr.iter().zip(w).zip(xr).map(|((g, w), x)| g * w * x).sum();
                let c = r * r * r * dot / d as f32;
                for (((dx, x), g), w) in dxr.iter_mut().zip(xr).zip(gr).zip(w) {
                    *dx = r * g * w - x * c;
                }
                if want_w {
                    for ((dw, x), g) in dw.iter_mut().zip(xr).zip(gr) {
                        *dw += g * x * r;
                    }
                }
            }
            dw
        })
        .collect();
    let dw = want_w.then(|| {
        let mut total = vec![0f32; d];
        for part in partial_dw {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
        }
        total
    });
    (dx, dw)
}
