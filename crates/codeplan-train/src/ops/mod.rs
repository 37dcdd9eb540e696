//! Fused operations of the training path, each with a hand-written backward pass.
//!
//! candle-transformers' fused kernels record no backward (training through them silently
//! updates almost nothing), and candle's own element-wise ops run on one thread. Every op here
//! is a candle custom op: its forward runs on slices with rayon, and its `bwd` returns the
//! gradients candle's autograd accumulates. Each op is checked against a composition of
//! differentiable candle ops and by finite differences (`tests/ops.rs`).

mod attention;
mod cross_entropy;
mod linear;
mod rms_norm;
mod rope;
mod swiglu;

pub use attention::{causal_attention, AttentionShape};
pub use cross_entropy::{linear_cross_entropy, CrossEntropyOutput};
pub use linear::{frozen_linear, trained_linear, LoraUpdate};
pub use rms_norm::rms_norm;
pub use rope::{rope, RopeTable};
pub use swiglu::swiglu;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Storage, Tensor};

/// Rows handed to one rayon task by the row-wise ops: large enough to amortise scheduling.
pub(crate) const ROW_CHUNK: usize = 16;

/// The f32 contents of a contiguous CPU storage, or an error naming `op`.
pub fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d.as_slice(),
        other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `f` on the f32 contents of `t` (made contiguous first).
pub fn with_slice<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    if t.dtype() != DType::F32 {
        candle_core::bail!("{op}: expected f32, got {:?}", t.dtype());
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(slice(cpu, layout, op)?)),
        _ => candle_core::bail!("{op}: only the CPU backend is implemented"),
    }
}

/// A CPU f32 tensor of `shape` from `data`.
pub(crate) fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// How an operand of [`matmul`] is stored, row-major.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stored {
    /// As the product reads it: `(rows, cols)`.
    AsIs,
    /// Transposed: the product reads `(rows, cols)` from a `(cols, rows)` array.
    Transposed,
}

/// `dst (m×n) (+)= a (m×k) · b (k×n)` on row-major slices, through the `gemm` crate that
/// candle's own matmul uses. `parallel` spreads one product over rayon's pool; ops that already
/// run many small products in parallel pass `false`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_stored: Stored,
    b: &[f32],
    b_stored: Stored,
    accumulate: bool,
    parallel: bool,
) {
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    let (a_rs, a_cs) = match a_stored {
        Stored::AsIs => (k as isize, 1),
        Stored::Transposed => (1, m as isize),
    };
    let (b_rs, b_cs) = match b_stored {
        Stored::AsIs => (n as isize, 1),
        Stored::Transposed => (1, k as isize),
    };
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 && m * n * k > 32 * 32 * 32 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above bounds every index the strides reach: `a` is read as m×k
    // (or k×m), `b` as k×n (or n×k) and `dst` written as m×n, all row-major and in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
