//! Quantised matrix multiplication for GGUF weight types, with each weight block unpacked once
//! and multiplied against up to [`ROWS`] activation rows (batched decode, prefill), where
//! candle's kernels re-read every weight per row or run scalar code on x86.
//!
//! Types: `Q5_0` (most of Qwen2.5-Coder's layers), `Q4_1` (SmolLM2's), `Q8_0` (Qwen's head and
//! half its value projections), and the k-quants `Q4_K`, `Q6_K` (Qwen's down projections).
//! Activations are quantised to 8 bits as llama.cpp does for each type ([`activations`]).
//!
//! AVX-512 VNNI and AVX2 kernels run where the processor has them; a portable kernel with
//! identical integer arithmetic runs elsewhere and is the reference the SIMD kernels are
//! tested against.

mod activations;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_k;
#[cfg(target_arch = "x86_64")]
mod x86_packed;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

pub use activations::{
    quantize_row, quantize_row_super, ActivationFormat, Activations, QuantRows, SuperRows,
};

use crate::error::{ModelError, Result};

/// Values per block of the 32-value types and of their 8-bit activations.
pub const BLOCK: usize = 32;
/// Values per super-block of the k-quants and of their 8-bit activations.
pub const SUPER_BLOCK: usize = 256;
/// Activation rows multiplied per unpacked weight block.
pub const ROWS: usize = 8;
/// Output columns per parallel work item.
const COLUMNS_PER_TASK: usize = 32;
/// Rows from which `Q5_0` products take the repacked prefill kernel (where the processor has
/// AVX-512 VNNI); fewer rows (decode, batched decode) keep the row-at-a-time kernel.
pub const PACKED_MIN_ROWS: usize = 1;

/// The weight block formats handled here (ggml's byte layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    /// `d: f16, qh: [u8; 4], qs: [u8; 16]`: x = d · (5-bit q − 16).
    Q5_0,
    /// `d: f16, m: f16, qs: [u8; 16]`: x = d · (4-bit q) + m.
    Q4_1,
    /// `d: f16, qs: [i8; 32]`: x = d · q.
    Q8_0,
    /// `d, dmin: f16, scales: [u8; 12], qs: [u8; 128]` per 256 values: eight 32-value
    /// sub-blocks with 6-bit scale s and minimum m, x = d · s · (4-bit q) − dmin · m.
    Q4K,
    /// `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` per 256 values: sixteen
    /// 16-value sub-blocks with 8-bit scale s, x = d · s · (6-bit q − 32).
    Q6K,
}

impl WeightType {
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q5_0 => 22,
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
            WeightType::Q4K => 144,
            WeightType::Q6K => 210,
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self.activation_format() {
            ActivationFormat::Blocks => BLOCK,
            ActivationFormat::Super => SUPER_BLOCK,
        }
    }

    /// The activation layout this type's kernel multiplies against (llama.cpp's pairing).
    pub fn activation_format(self) -> ActivationFormat {
        match self {
            WeightType::Q5_0 | WeightType::Q4_1 | WeightType::Q8_0 => ActivationFormat::Blocks,
            WeightType::Q4K | WeightType::Q6K => ActivationFormat::Super,
        }
    }

    /// Whether this type's kernel beats candle's on x86 in prefill and decode, so that
    /// [`QuantMatrix::from_qtensor`] takes it. Not the k-quants: candle 0.11.1 multiplies them
    /// with weights repacked eight columns at a time, measured 2.2× faster than ours at 512
    /// rows (prefill) and equal at one row; ours wins only at 2–8 rows (batched decode).
    pub fn beats_candle(self) -> bool {
        !matches!(self, WeightType::Q4K | WeightType::Q6K)
    }

    fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q5_0 => Some(WeightType::Q5_0),
            GgmlDType::Q4_1 => Some(WeightType::Q4_1),
            GgmlDType::Q8_0 => Some(WeightType::Q8_0),
            GgmlDType::Q4K => Some(WeightType::Q4K),
            GgmlDType::Q6K => Some(WeightType::Q6K),
            _ => None,
        }
    }
}

/// A weight matrix `(n, k)` in one of the [`WeightType`]s, multiplied as `x Wᵀ`.
#[derive(Clone, Debug)]
pub struct QuantMatrix {
    kind: WeightType,
    n: usize,
    k: usize,
    /// ggml's row-major blocks, or [`x86_packed`]'s tiles where `packed`.
    data: Vec<u8>,
    packed: bool,
}

impl QuantMatrix {
    /// Takes over a GGUF tensor of a type whose kernel [beats candle's](WeightType::beats_candle);
    /// `None` for other types (left to candle).
    pub fn from_qtensor(q: &QTensor) -> Result<Option<Self>> {
        match WeightType::from_ggml(q.dtype()) {
            Some(kind) if kind.beats_candle() => Self::from_qtensor_any(q),
            _ => Ok(None),
        }
    }

    /// Takes over a GGUF tensor of any [`WeightType`] (tests, kernel benchmarks); `None` for
    /// other types.
    pub fn from_qtensor_any(q: &QTensor) -> Result<Option<Self>> {
        let Some(kind) = WeightType::from_ggml(q.dtype()) else {
            return Ok(None);
        };
        let (n, k) = q.shape().dims2()?;
        if k % kind.block_values() != 0 {
            return Ok(None);
        }
        // Borrowed where candle allows: packing then needs no second copy of a large matrix
        // (Qwen's 145 MB head) next to the tiles.
        let data = q.data()?;
        let expected = n * k / kind.block_values() * kind.block_bytes();
        if data.len() != expected {
            return Err(ModelError::InvalidRequest(format!(
                "{kind:?} tensor ({n}, {k}) has {} bytes, expected {expected}",
                data.len(),
            )));
        }
        let (data, packed) = match packed_layout(kind, &data, n, k) {
            Some(tiles) => (tiles, true),
            None => (data.into_owned(), false),
        };
        Ok(Some(QuantMatrix {
            kind,
            n,
            k,
            data,
            packed,
        }))
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The weight type.
    pub fn kind(&self) -> WeightType {
        self.kind
    }

    /// The activation layout [`QuantMatrix::forward_rows`] expects.
    pub fn input_format(&self) -> ActivationFormat {
        self.kind.activation_format()
    }

    /// `x (m, k)` → `x Wᵀ (m, n)`, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_rows(&quantize_input(x, self.input_format())?)
    }

    /// The product with rows already quantised by [`quantize_input`] (so that layers sharing
    /// one input, q/k/v or gate/up, quantise it once).
    pub fn forward_rows(&self, rows: &Activations) -> Result<Tensor> {
        if rows.format() != self.input_format() {
            return Err(ModelError::InvalidRequest(format!(
                "matmul: {kind:?} weights need {:?} activations, got {:?}",
                self.input_format(),
                rows.format(),
                kind = self.kind,
            )));
        }
        if !rows.is_empty() && rows.k() != self.k {
            return Err(ModelError::InvalidRequest(format!(
                "matmul: input width {}, weight expects {}",
                rows.k(),
                self.k
            )));
        }
        let mut out = vec![0f32; rows.len() * self.n];
        self.matmul(rows, &mut out);
        Ok(Tensor::from_vec(out, (rows.len(), self.n), &Device::Cpu)?)
    }

    /// `out[r * n + j] = rows[r] · W[j]`, columns split across threads; `rows` in
    /// [`QuantMatrix::input_format`], `k` wide (checked by the caller).
    fn matmul(&self, rows: &Activations, out: &mut [f32]) {
        assert_eq!(out.len(), rows.len() * self.n, "matmul: output size");
        multiply(rows, &[(self, out.as_mut_ptr() as usize)]);
    }
}

/// The products of several matrices with the same rows (q/k/v, gate/up) in one parallel
/// dispatch, so that a decode step wakes the worker threads once instead of once per matrix:
/// `out_i (m, n_i) = rows · W_iᵀ`.
pub fn matmul_many(rows: &Activations, products: &mut [(&QuantMatrix, &mut [f32])]) -> Result<()> {
    for (w, out) in products.iter() {
        if rows.format() != w.input_format() || (!rows.is_empty() && rows.k() != w.k) {
            return Err(ModelError::InvalidRequest(format!(
                "matmul: {:?} weights ({}, {}) cannot multiply {:?} rows {} wide",
                w.kind,
                w.n,
                w.k,
                rows.format(),
                rows.k()
            )));
        }
        if out.len() != rows.len() * w.n {
            return Err(ModelError::InvalidRequest(format!(
                "matmul: output of {} values for {} rows of {} columns",
                out.len(),
                rows.len(),
                w.n
            )));
        }
    }
    let jobs: Vec<(&QuantMatrix, usize)> = products
        .iter_mut()
        .map(|(w, out)| (*w, out.as_mut_ptr() as usize))
        .collect();
    multiply(rows, &jobs);
    Ok(())
}

/// The weights in [`x86_packed`]'s layout, for the 32-value types where the processor runs
/// its kernel: measured faster than the row-at-a-time kernel at every row count on
/// Qwen2.5-Coder-0.5B's `Q5_0` layers (prefill 1.8×, decode 1.2× at one sequence and at ten),
/// in the same bytes.
fn packed_layout(kind: WeightType, data: &[u8], n: usize, k: usize) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    if kind.activation_format() == ActivationFormat::Blocks
        && n.is_multiple_of(x86_packed::TILE_COLUMNS)
        && x86::avx512_available()
    {
        return Some(x86_packed::pack(kind, data, n, k));
    }
    let _ = (kind, data, n, k);
    None
}

/// Runs every `(matrix, output address)` job over `rows` (formats, widths and output sizes
/// checked by the caller).
fn multiply(rows: &Activations, jobs: &[(&QuantMatrix, usize)]) {
    match rows {
        Activations::Blocks(rows) => {
            let (packed, plain): (Vec<_>, Vec<_>) = jobs.iter().partition(|(w, _)| w.packed);
            for (w, out) in packed {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only `packed_layout` sets `packed`, where the processor has AVX-512
                // VNNI, and `data` then holds `pack`'s tiles of these weights; the caller
                // checked the rows' width and that `out` holds rows × n values.
                unsafe {
                    x86_packed::matmul(w.kind, &w.data, w.n, w.k, rows, out)
                };
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("packed weights on {w:?} outside x86-64 ({out})");
            }
            if !plain.is_empty() {
                tiled(rows, &plain, dot_rows);
            }
        }
        Activations::Super(rows) => tiled(rows, jobs, dot_rows_super),
    }
}

/// Runs `dot` (one weight row against up to [`ROWS`] activation rows) over every column of
/// every job's matrix and every group of rows, each task owning [`COLUMNS_PER_TASK`] columns of
/// one matrix; a job's output is `(rows, n)` at the given address.
fn tiled<R: Sync>(
    rows: &[R],
    jobs: &[(&QuantMatrix, usize)],
    dot: impl Fn(WeightType, &[u8], &[R], &mut [f32]) + Sync,
) {
    let m = rows.len();
    // Task ranges of the jobs, one after the other.
    let mut first_task = Vec::with_capacity(jobs.len() + 1);
    first_task.push(0);
    for (w, _) in jobs {
        first_task.push(first_task.last().copied().unwrap_or(0) + w.n.div_ceil(COLUMNS_PER_TASK));
    }
    let tasks = first_task.last().copied().unwrap_or(0);
    // Each task owns columns [c0, c1) of every output row of one job; it writes through a raw
    // pointer because those columns are not one contiguous slice of the output.
    let task = |t: usize| {
        let job = first_task.partition_point(|&f| f <= t) - 1;
        let (w, out_ptr) = jobs[job];
        let n = w.n;
        let row_bytes = w.k / w.kind.block_values() * w.kind.block_bytes();
        let c0 = (t - first_task[job]) * COLUMNS_PER_TASK;
        let c1 = (c0 + COLUMNS_PER_TASK).min(n);
        let mut sums = [0f32; ROWS];
        for r0 in (0..m).step_by(ROWS) {
            let group = &rows[r0..(r0 + ROWS).min(m)];
            for j in c0..c1 {
                let wr = &w.data[j * row_bytes..(j + 1) * row_bytes];
                dot(w.kind, wr, group, &mut sums[..group.len()]);
                for (i, s) in sums[..group.len()].iter().enumerate() {
                    // SAFETY: the job's output holds `m * n` values (checked by the caller),
                    // (r0 + i, j) is inside it, and only this task writes it.
                    unsafe { *(out_ptr as *mut f32).add((r0 + i) * n + j) = *s };
                }
            }
        }
    };
    // candle's own worker pool: the same threads its kernels use, woken without sleeping,
    // so a decode step's many small matmuls do not pay a thread wake-up each.
    candle_core::utils::barrier_pool().execute_chunked(tasks, |range| range.for_each(task));
}

/// Dot products of one weight row of a 32-value type with up to [`ROWS`] activation rows.
fn dot_rows(kind: WeightType, w: &[u8], rows: &[QuantRows], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if (w.len() / kind.block_bytes()).is_multiple_of(2) && x86::avx512_available() {
            // SAFETY: the processor has AVX-512 F/BW/DQ/VNNI (checked), the row whole blocks.
            unsafe { x86::dot_rows_avx512(kind, w, rows, out) };
            return;
        }
        if x86::available() {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            unsafe { x86::dot_rows(kind, w, rows, out) };
            return;
        }
    }
    scalar::dot_rows(kind, w, rows, out);
}

/// Dot products of one weight row of a k-quant type with up to [`ROWS`] activation rows.
fn dot_rows_super(kind: WeightType, w: &[u8], rows: &[SuperRows], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::avx512_available() {
            // SAFETY: the processor has AVX-512 F/BW/DQ/VNNI (checked); `tiled` passes whole
            // super-blocks and rows of the matrix's width.
            unsafe { x86_k::dot_rows_avx512(kind, w, rows, out) };
            return;
        }
        if x86::available() {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            unsafe { x86_k::dot_rows_avx2(kind, w, rows, out) };
            return;
        }
    }
    scalar::dot_rows_super(kind, w, rows, out);
}

/// Quantises every row of `x (m, k)` to 8 bits in `format`.
pub fn quantize_input(x: &Tensor, format: ActivationFormat) -> Result<Activations> {
    let (_, k) = x.dims2()?;
    let block = match format {
        ActivationFormat::Blocks => BLOCK,
        ActivationFormat::Super => SUPER_BLOCK,
    };
    if k % block != 0 {
        return Err(ModelError::InvalidRequest(format!(
            "matmul: input width {k} is not a multiple of {block}"
        )));
    }
    let x = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    Ok(Activations::quantize(&x, k, format))
}
