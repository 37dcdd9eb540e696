//! Quantised matrix multiplication for the GGUF types that candle runs with scalar code on
//! x86 or without row tiling (`Q5_0`, used by most of Qwen2.5-Coder's layers, `Q4_1`,
//! SmolLM2's, and `Q8_0`, Qwen's head and half its value projections): activations are
//! quantised to 8 bits per 32-value block, as llama.cpp does, and each weight block is unpacked
//! once and multiplied against up to [`ROWS`] activation rows (batched decode, prefill).
//!
//! An AVX2 kernel runs where the processor has it; a portable kernel with identical integer
//! arithmetic runs elsewhere and is the reference the SIMD kernel is tested against.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;

use crate::error::{ModelError, Result};

/// Values per quantisation block (both weight types and the 8-bit activations).
pub const BLOCK: usize = 32;
/// Activation rows multiplied per unpacked weight block.
pub const ROWS: usize = 8;
/// Output columns per parallel work item.
const COLUMNS_PER_TASK: usize = 32;

/// The weight block formats handled here (ggml's byte layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    /// `d: f16, qh: [u8; 4], qs: [u8; 16]`: x = d · (5-bit q − 16).
    Q5_0,
    /// `d: f16, m: f16, qs: [u8; 16]`: x = d · (4-bit q) + m.
    Q4_1,
    /// `d: f16, qs: [i8; 32]`: x = d · q.
    Q8_0,
}

impl WeightType {
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q5_0 => 22,
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
        }
    }

    fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q5_0 => Some(WeightType::Q5_0),
            GgmlDType::Q4_1 => Some(WeightType::Q4_1),
            GgmlDType::Q8_0 => Some(WeightType::Q8_0),
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
    data: Vec<u8>,
}

/// One activation row quantised to 8 bits per block: scales, sums (Σq · d, for `Q4_1`'s
/// offset) and values.
pub struct QuantRows {
    k: usize,
    scales: Vec<f32>,
    sums: Vec<f32>,
    values: Vec<i8>,
}

impl QuantMatrix {
    /// Takes over a GGUF tensor of a supported type; `None` for other types (left to candle).
    pub fn from_qtensor(q: &QTensor) -> Result<Option<Self>> {
        let Some(kind) = WeightType::from_ggml(q.dtype()) else {
            return Ok(None);
        };
        let (n, k) = q.shape().dims2()?;
        if k % BLOCK != 0 {
            return Ok(None);
        }
        let data = q.data()?.into_owned();
        if data.len() != n * k / BLOCK * kind.block_bytes() {
            return Err(ModelError::InvalidRequest(format!(
                "{kind:?} tensor ({n}, {k}) has {} bytes, expected {}",
                data.len(),
                n * k / BLOCK * kind.block_bytes()
            )));
        }
        Ok(Some(QuantMatrix { kind, n, k, data }))
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `x (m, k)` → `x Wᵀ (m, n)`, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_rows(&quantize_input(x)?)
    }

    /// The product with rows already quantised by [`quantize_input`] (so that layers sharing
    /// one input, q/k/v or gate/up, quantise it once).
    pub fn forward_rows(&self, rows: &[QuantRows]) -> Result<Tensor> {
        if let Some(r) = rows.iter().find(|r| r.k != self.k) {
            return Err(ModelError::InvalidRequest(format!(
                "matmul: input width {}, weight expects {}",
                r.k, self.k
            )));
        }
        let mut out = vec![0f32; rows.len() * self.n];
        self.matmul(rows, &mut out);
        Ok(Tensor::from_vec(out, (rows.len(), self.n), &Device::Cpu)?)
    }

    /// `out[r * n + j] = rows[r] · W[j]`, columns split across threads.
    pub fn matmul(&self, rows: &[QuantRows], out: &mut [f32]) {
        let (n, kind) = (self.n, self.kind);
        let blocks = self.k / BLOCK;
        let row_bytes = blocks * kind.block_bytes();
        let m = rows.len();
        // Each task owns columns [c0, c1) of every output row; it writes through a raw pointer
        // because those columns are not one contiguous slice of `out`.
        let out_ptr = out.as_mut_ptr() as usize;
        let tasks = n.div_ceil(COLUMNS_PER_TASK);
        let task = |t: usize| {
            let c0 = t * COLUMNS_PER_TASK;
            let c1 = (c0 + COLUMNS_PER_TASK).min(n);
            let mut sums = [0f32; ROWS];
            for r0 in (0..m).step_by(ROWS) {
                let group = &rows[r0..(r0 + ROWS).min(m)];
                for j in c0..c1 {
                    let w = &self.data[j * row_bytes..(j + 1) * row_bytes];
                    dot_rows(kind, w, group, &mut sums[..group.len()]);
                    for (i, s) in sums[..group.len()].iter().enumerate() {
                        // SAFETY: (r0 + i, j) is inside `out` and written by this task only.
                        unsafe { *(out_ptr as *mut f32).add((r0 + i) * n + j) = *s };
                    }
                }
            }
        };
        // candle's own worker pool: the same threads its kernels use, woken without sleeping,
        // so a decode step's many small matmuls do not pay a thread wake-up each.
        candle_core::utils::barrier_pool().execute_chunked(tasks, |range| range.for_each(task));
    }
}

/// Dot products of one weight row with up to [`ROWS`] activation rows.
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

/// Quantises every row of `x (m, k)` to 8 bits per block.
pub fn quantize_input(x: &Tensor) -> Result<Vec<QuantRows>> {
    let (_, k) = x.dims2()?;
    if k % BLOCK != 0 {
        return Err(ModelError::InvalidRequest(format!(
            "matmul: input width {k} is not a multiple of {BLOCK}"
        )));
    }
    let x = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    Ok(x.chunks_exact(k).map(quantize_row).collect())
}

/// Quantises one row to 8 bits per 32-value block (ggml's `Q8_0`/`Q8_1` rounding).
pub fn quantize_row(x: &[f32]) -> QuantRows {
    let blocks = x.len() / BLOCK;
    let mut scales = Vec::with_capacity(blocks);
    let mut sums = Vec::with_capacity(blocks);
    let mut values = Vec::with_capacity(x.len());
    for block in x.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut sum = 0i32;
        for v in block {
            let q = (v * inv).round() as i8;
            sum += i32::from(q);
            values.push(q);
        }
        // ggml stores the scale and the scaled sum as f16; rounding them the same way keeps
        // results close to llama.cpp's.
        scales.push(f16::from_f32(d).to_f32());
        sums.push(f16::from_f32(d * sum as f32).to_f32());
    }
    QuantRows {
        k: x.len(),
        scales,
        sums,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random-looking but fixed matrix, quantised by candle, multiplied three ways.
    fn check(dtype: GgmlDType, m: usize, n: usize, k: usize) {
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 0.2)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104_729 % 997) as f32 / 997.0 - 0.5) * 3.0)
            .collect();
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, dtype).unwrap();
        let fast = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let got = fast.forward(&xt).unwrap().to_vec2::<f32>().unwrap();
        // Against the dequantised weights in f32: only the activations' 8-bit rounding differs.
        let deq = q.dequantize(&Device::Cpu).unwrap();
        let want = xt
            .matmul(&deq.t().unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Against the portable kernel: the same integer arithmetic.
        let rows: Vec<QuantRows> = x.chunks_exact(k).map(quantize_row).collect();
        let blocks = k / BLOCK;
        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
            for j in 0..n {
                let scale = w.iter().fold(1e-3f32, |a, v| a.max(v.abs()));
                assert!(
                    (g[j] - w[j]).abs() < 0.02 * scale,
                    "{dtype:?} ({r},{j}): {} vs {}",
                    g[j],
                    w[j]
                );
                let row = &fast.data[j * blocks * fast.kind.block_bytes()
                    ..(j + 1) * blocks * fast.kind.block_bytes()];
                let mut s = [0f32];
                scalar::dot_rows(fast.kind, row, &rows[r..r + 1], &mut s);
                assert!(
                    (g[j] - s[0]).abs() <= 1e-4 * s[0].abs().max(1.0),
                    "{dtype:?} SIMD vs scalar"
                );
            }
        }
    }

    // An odd number of blocks (k = 96) takes the AVX2 kernel, an even one (k = 128) the
    // AVX-512 kernel where the processor has it; m up to 2 × ROWS + 1 covers partial groups.
    #[test]
    fn q5_0_matches_the_dequantised_product() {
        for m in [1, 3, 4, 9, 17] {
            check(GgmlDType::Q5_0, m, 70, 96);
            check(GgmlDType::Q5_0, m, 70, 128);
        }
    }

    #[test]
    fn q8_0_matches_the_dequantised_product() {
        for m in [1, 3, 8, 9, 17] {
            check(GgmlDType::Q8_0, m, 70, 96);
            check(GgmlDType::Q8_0, m, 70, 128);
        }
    }

    #[test]
    fn q4_1_matches_the_dequantised_product() {
        for m in [1, 2, 5, 8, 17] {
            check(GgmlDType::Q4_1, m, 37, 96);
            check(GgmlDType::Q4_1, m, 37, 128);
        }
    }
}
