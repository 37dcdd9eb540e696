//! SwiGLU gating of the MLP: `silu(gate) ⊙ up`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_slice};

/// Elements per rayon task.
const CHUNK: usize = 4096;

struct SwiGlu;

/// `silu(gate) ⊙ up` for two tensors of one shape; differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.shape() != up.shape() {
        candle_core::bail!(
            "swiglu: gate {:?} and up {:?} differ",
            gate.dims(),
            up.dims()
        );
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = slice(gs, gl, self.name())?;
        let u = slice(us, ul, self.name())?;
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(ys, (gs, us))| {
                for ((y, g), u) in ys.iter_mut().zip(gs).zip(us) {
                    *y = g * sigmoid(*g) * u;
                }
            });
        Ok((CpuStorage::F32(y), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = gate.elem_count();
        let (dg, du) = with_slice(gate, self.name(), |g| {
            with_slice(up, self.name(), |u| {
                with_slice(grad, self.name(), |d| {
                    let mut dg = vec![0f32; n];
                    let mut du = vec![0f32; n];
                    dg.par_chunks_mut(CHUNK)
                        .zip(du.par_chunks_mut(CHUNK))
                        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
                        .zip(d.par_chunks(CHUNK))
                        .for_each(|(((dgs, dus), (gs, us)), ds)| {
                            for i in 0..dgs.len() {
                                let (g, u, d) = (gs[i], us[i], ds[i]);
                                let s = sigmoid(g);
                                let silu = g * s;
                                dus[i] = d * silu;
                                dgs[i] = d * u * s * (1.0 + g * (1.0 - s));
                            }
                        });
                    (dg, du)
                })
            })
        })???;
        Ok((
            Some(tensor(dg, gate.shape().clone())?),
            Some(tensor(du, up.shape().clone())?),
        ))
    }
}
