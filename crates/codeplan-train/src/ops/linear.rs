//! Linear layers as single ops: a frozen weight (with an optional LoRA update), or a trained one.
//!
//! candle's matmul backward always computes both operands' gradients, and every intermediate of
//! a composed `x Wᵀ + b + s·(x Aᵀ) Bᵀ` stays alive until the backward pass; as one op, a frozen
//! weight gets no gradient work and only the output is kept.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{matmul, slice, tensor, with_slice, Stored};

/// A LoRA update of a frozen linear layer: `s · (x ⊙ mask) Aᵀ Bᵀ`.
pub struct LoraUpdate<'a> {
    /// `A (rank, in)`.
    pub a: &'a Tensor,
    /// `B (out, rank)`.
    pub b: &'a Tensor,
    /// `alpha / rank`.
    pub scale: f32,
    /// Dropout on the update's input: per element 0 or `1/keep` (`None`: no dropout).
    pub dropout_mask: Option<Arc<Vec<f32>>>,
}

/// `y (+)= x Wᵀ` for `x (rows, in)` and `w (out, in)`: every linear layer's forward product.
fn times_weight_t(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    (out, inp): (usize, usize),
    accumulate: bool,
) {
    matmul(
        y,
        (rows, out, inp),
        x,
        Stored::AsIs,
        w,
        Stored::Transposed,
        accumulate,
        true,
    );
}

/// `g W` for `g (rows, out)` and `w (out, in)`: every linear layer's input gradient.
fn times_weight(g: &[f32], w: &[f32], rows: usize, (out, inp): (usize, usize)) -> Vec<f32> {
    let mut dx = vec![0f32; rows * inp];
    matmul(
        &mut dx,
        (rows, inp, out),
        g,
        Stored::AsIs,
        w,
        Stored::AsIs,
        false,
        true,
    );
    dx
}

/// The frozen part of a layer, shared by both ops below.
struct Frozen {
    weight: Tensor,
    bias: Option<Tensor>,
    out_features: usize,
    in_features: usize,
}

impl Frozen {
    /// `x Wᵀ + b` into a new buffer.
    fn forward(&self, x: &[f32], rows: usize, op: &str) -> Result<Vec<f32>> {
        let mut y = vec![0f32; rows * self.out_features];
        if let Some(b) = &self.bias {
            with_slice(b, op, |b| {
                for row in y.chunks_mut(self.out_features) {
                    row.copy_from_slice(b);
                }
            })?;
        }
        let dims = (self.out_features, self.in_features);
        let accumulate = self.bias.is_some();
        with_slice(&self.weight, op, |w| {
            times_weight_t(&mut y, x, w, rows, dims, accumulate)
        })?;
        Ok(y)
    }

    /// `g W`, the input's gradient through the frozen weight.
    fn input_grad(&self, g: &[f32], rows: usize, op: &str) -> Result<Vec<f32>> {
        let dims = (self.out_features, self.in_features);
        with_slice(&self.weight, op, |w| times_weight(g, w, rows, dims))
    }
}

fn frozen(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, op: &str) -> Result<Frozen> {
    let (out_features, in_features) = w.dims2()?;
    let (_, k) = x.dims2()?;
    if k != in_features {
        candle_core::bail!("{op}: input width {k}, weight {out_features}×{in_features}");
    }
    if let Some(b) = bias {
        if b.dims() != [out_features] {
            candle_core::bail!("{op}: bias {:?} for {out_features} outputs", b.dims());
        }
    }
    Ok(Frozen {
        weight: w.contiguous()?.detach(),
        bias: bias
            .map(|b| b.contiguous().map(|b| b.detach()))
            .transpose()?,
        out_features,
        in_features,
    })
}

/// `x Wᵀ + b` (+ a LoRA update) for a frozen `w (out, in)` and bias; differentiable in `x` and
/// in the update's `A` and `B`.
pub fn frozen_linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    lora: Option<LoraUpdate<'_>>,
) -> Result<Tensor> {
    let base = frozen(x, w, bias, "frozen-linear")?;
    let x = x.contiguous()?;
    let Some(lora) = lora else {
        return x.apply_op1(FrozenLinear(base));
    };
    let (rank, a_in) = lora.a.dims2()?;
    if a_in != base.in_features || lora.b.dims() != [base.out_features, rank] {
        candle_core::bail!(
            "lora-linear: A {:?} and B {:?} do not fit a {}×{} layer",
            lora.a.dims(),
            lora.b.dims(),
            base.out_features,
            base.in_features
        );
    }
    if let Some(m) = &lora.dropout_mask {
        if m.len() != x.elem_count() {
            candle_core::bail!(
                "lora-linear: dropout mask of {} for {:?}",
                m.len(),
                x.dims()
            );
        }
    }
    x.apply_op3(
        &lora.a.contiguous()?,
        &lora.b.contiguous()?,
        LoraLinear {
            base,
            rank,
            scale: lora.scale,
            mask: lora.dropout_mask,
        },
    )
}

struct FrozenLinear(Frozen);

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let rows = l.dims()[0];
        let y = self.0.forward(x, rows, self.name())?;
        Ok((CpuStorage::F32(y), (rows, self.0.out_features).into()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let rows = x.dims()[0];
        let dx = with_slice(grad, self.name(), |g| {
            self.0.input_grad(g, rows, self.name())
        })??;
        Ok(Some(tensor(dx, (rows, self.0.in_features))?))
    }
}

struct LoraLinear {
    base: Frozen,
    rank: usize,
    scale: f32,
    mask: Option<Arc<Vec<f32>>>,
}

impl LoraLinear {
    /// The adapter's input: `x`, or `x ⊙ mask` under dropout.
    fn dropped(&self, x: &[f32]) -> Vec<f32> {
        match &self.mask {
            Some(m) => x.iter().zip(m.iter()).map(|(x, m)| x * m).collect(),
            None => x.to_vec(),
        }
    }

    /// `u = s · xd Aᵀ`, `(rows, rank)`.
    fn down(&self, xd: &[f32], a: &[f32], rows: usize) -> Vec<f32> {
        let mut u = vec![0f32; rows * self.rank];
        let shape = (rows, self.rank, self.base.in_features);
        matmul(
            &mut u,
            shape,
            xd,
            Stored::AsIs,
            a,
            Stored::Transposed,
            false,
            true,
        );
        u.iter_mut().for_each(|v| *v *= self.scale);
        u
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(xs, xl, self.name())?;
        let a = slice(a_s, al, self.name())?;
        let b = slice(bs, bl, self.name())?;
        let rows = xl.dims()[0];
        let mut y = self.base.forward(x, rows, self.name())?;
        let u = self.down(&self.dropped(x), a, rows);
        let shape = (rows, self.base.out_features, self.rank);
        matmul(
            &mut y,
            shape,
            &u,
            Stored::AsIs,
            b,
            Stored::Transposed,
            true,
            true,
        );
        Ok((CpuStorage::F32(y), (rows, self.base.out_features).into()))
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let rows = x.dims()[0];
        let (inp, out, r) = (self.base.in_features, self.base.out_features, self.rank);
        let name = self.name();
        let (dx, da, db) = with_slice(x, name, |x| {
            with_slice(a, name, |a| {
                with_slice(b, name, |b| {
                    with_slice(grad, name, |g| -> Result<_> {
                        let mut dx = self.base.input_grad(g, rows, name)?;
                        let xd = self.dropped(x);
                        // gB = s · g B, (rows, rank)
                        let mut gb = vec![0f32; rows * r];
                        matmul(
                            &mut gb,
                            (rows, r, out),
                            g,
                            Stored::AsIs,
                            b,
                            Stored::AsIs,
                            false,
                            true,
                        );
                        gb.iter_mut().for_each(|v| *v *= self.scale);
                        // dx += (gB A) ⊙ mask
                        let mut through = vec![0f32; rows * inp];
                        matmul(
                            &mut through,
                            (rows, inp, r),
                            &gb,
                            Stored::AsIs,
                            a,
                            Stored::AsIs,
                            false,
                            true,
                        );
                        match &self.mask {
                            Some(m) => dx
                                .iter_mut()
                                .zip(through.iter().zip(m.iter()))
                                .for_each(|(d, (t, m))| *d += t * m),
                            None => dx.iter_mut().zip(&through).for_each(|(d, t)| *d += t),
                        }
                        // dA = gBᵀ xd, dB = gᵀ u
                        let mut da = vec![0f32; r * inp];
                        matmul(
                            &mut da,
                            (r, inp, rows),
                            &gb,
                            Stored::Transposed,
                            &xd,
                            Stored::AsIs,
                            false,
                            true,
                        );
                        let u = self.down(&xd, a, rows);
                        let mut db = vec![0f32; out * r];
                        matmul(
                            &mut db,
                            (out, r, rows),
                            g,
                            Stored::Transposed,
                            &u,
                            Stored::AsIs,
                            false,
                            true,
                        );
                        Ok((dx, da, db))
                    })
                })
            })
        })?????;
        Ok((
            Some(tensor(dx, (rows, inp))?),
            Some(tensor(da, (r, inp))?),
            Some(tensor(db, (out, r))?),
        ))
    }
}

struct TrainedLinear {
    out_features: usize,
    in_features: usize,
}

/// `x Wᵀ` for a trained `w (out, in)`: both gradients, each one product, no transposed copies.
pub fn trained_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out_features, in_features) = w.dims2()?;
    let (_, k) = x.dims2()?;
    if k != in_features {
        candle_core::bail!("trained-linear: input width {k}, weight {out_features}×{in_features}");
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        TrainedLinear {
            out_features,
            in_features,
        },
    )
}

impl CustomOp2 for TrainedLinear {
    fn name(&self) -> &'static str {
        "trained-linear"
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
        let rows = xl.dims()[0];
        let mut y = vec![0f32; rows * self.out_features];
        times_weight_t(
            &mut y,
            x,
            w,
            rows,
            (self.out_features, self.in_features),
            false,
        );
        Ok((CpuStorage::F32(y), (rows, self.out_features).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.dims()[0];
        let (inp, out) = (self.in_features, self.out_features);
        let want_w = w.track_op();
        let (dx, dw) = with_slice(x, self.name(), |x| {
            with_slice(w, self.name(), |w| {
                with_slice(grad, self.name(), |g| {
                    let dx = times_weight(g, w, rows, (out, inp));
                    let dw = want_w.then(|| {
                        let mut dw = vec![0f32; out * inp];
                        matmul(
                            &mut dw,
                            (out, inp, rows),
                            g,
                            Stored::Transposed,
                            x,
                            Stored::AsIs,
                            false,
                            true,
                        );
                        dw
                    });
                    (dx, dw)
                })
            })
        })???;
        Ok((
            Some(tensor(dx, (rows, inp))?),
            dw.map(|dw| tensor(dw, (out, inp))).transpose()?,
        ))
    }
}
