//! `x Wᵀ` against a frozen weight: the backward pass computes the input's gradient only.
//!
//! candle's matmul backward always computes both operands' gradients; for a frozen base weight
//! (LoRA) that is a second full-size product per layer whose result is thrown away.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{matmul, slice, tensor, with_slice, Stored};

struct FrozenLinear {
    weight: Tensor,
    out_features: usize,
    in_features: usize,
}

/// `x (tokens, in) · Wᵀ` for a frozen `w (out, in)`; differentiable in `x` only.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out_features, in_features) = w.dims2()?;
    let (_, k) = x.dims2()?;
    if k != in_features {
        candle_core::bail!("frozen-linear: input width {k}, weight {out_features}×{in_features}");
    }
    x.contiguous()?.apply_op1(FrozenLinear {
        weight: w.contiguous()?.detach(),
        out_features,
        in_features,
    })
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let rows = l.dims()[0];
        let mut y = vec![0f32; rows * self.out_features];
        with_slice(&self.weight, self.name(), |w| {
            matmul(
                &mut y,
                (rows, self.out_features, self.in_features),
                x,
                Stored::AsIs,
                w,
                Stored::Transposed,
                false,
                true,
            )
        })?;
        Ok((CpuStorage::F32(y), (rows, self.out_features).into()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let rows = x.dims()[0];
        let mut dx = vec![0f32; rows * self.in_features];
        with_slice(grad, self.name(), |g| {
            with_slice(&self.weight, self.name(), |w| {
                matmul(
                    &mut dx,
                    (rows, self.in_features, self.out_features),
                    g,
                    Stored::AsIs,
                    w,
                    Stored::AsIs,
                    false,
                    true,
                )
            })
        })??;
        Ok(Some(tensor(dx, (rows, self.in_features))?))
    }
}
