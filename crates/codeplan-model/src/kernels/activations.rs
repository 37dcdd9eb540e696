//! Activation rows quantised to 8 bits, in the two layouts llama.cpp pairs with the weight
//! types: per 32 values (`Q8_0`/`Q8_1`, for `Q5_0`, `Q4_1`, `Q8_0`) and per 256 values
//! (`Q8_K`, for the k-quants `Q4_K`, `Q6_K`).

use half::f16;

use super::{BLOCK, SUPER_BLOCK};

/// Which activation layout a weight type multiplies against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationFormat {
    /// 8 bits per 32 values, f16-rounded scale and scaled sum per block ([`QuantRows`]).
    Blocks,
    /// 8 bits per 256 values, f32 scale and 16 integer sums per block ([`SuperRows`]).
    Super,
}

/// One activation row quantised to 8 bits per 32-value block: scales, sums (Σq · d, for
/// `Q4_1`'s offset), integer sums (Σq, for the repacked kernels' offsets) and values.
pub struct QuantRows {
    pub(super) k: usize,
    pub(super) scales: Vec<f32>,
    pub(super) sums: Vec<f32>,
    pub(super) int_sums: Vec<i32>,
    pub(super) values: Vec<i8>,
}

/// One activation row quantised as ggml's `Q8_K`: per 256 values an f32 scale, and per 16
/// values the integer sum (for `Q4_K`'s minimums and `Q6_K`'s offset of 32).
pub struct SuperRows {
    pub(super) k: usize,
    pub(super) scales: Vec<f32>,
    pub(super) bsums: Vec<i16>,
    pub(super) values: Vec<i8>,
}

/// A batch of rows quantised for one [`ActivationFormat`].
pub enum Activations {
    /// For the 32-value block types.
    Blocks(Vec<QuantRows>),
    /// For the k-quants.
    Super(Vec<SuperRows>),
}

impl Activations {
    /// Quantises every row of `x` (row-major, `k` values each) in `format`.
    pub fn quantize(x: &[f32], k: usize, format: ActivationFormat) -> Self {
        match format {
            ActivationFormat::Blocks => {
                Activations::Blocks(x.chunks_exact(k).map(quantize_row).collect())
            }
            ActivationFormat::Super => {
                Activations::Super(x.chunks_exact(k).map(quantize_row_super).collect())
            }
        }
    }

    /// The layout of these rows.
    pub fn format(&self) -> ActivationFormat {
        match self {
            Activations::Blocks(_) => ActivationFormat::Blocks,
            Activations::Super(_) => ActivationFormat::Super,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Activations::Blocks(r) => r.len(),
            Activations::Super(r) => r.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the rows (0 when there are none).
    pub fn k(&self) -> usize {
        match self {
            Activations::Blocks(r) => r.first().map_or(0, |r| r.k),
            Activations::Super(r) => r.first().map_or(0, |r| r.k),
        }
    }
}

/// Quantises one row to 8 bits per 32-value block (ggml's `Q8_0`/`Q8_1` rounding).
pub fn quantize_row(x: &[f32]) -> QuantRows {
    let blocks = x.len() / BLOCK;
    let mut scales = Vec::with_capacity(blocks);
    let mut sums = Vec::with_capacity(blocks);
    let mut int_sums = Vec::with_capacity(blocks);
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
        int_sums.push(sum);
    }
    QuantRows {
        k: x.len(),
        scales,
        sums,
        int_sums,
        values,
    }
}

/// Quantises one row as ggml's `Q8_K` (`quantize_row_q8_K_ref`): the value of largest
/// magnitude maps to −127, the scale stays f32.
pub fn quantize_row_super(x: &[f32]) -> SuperRows {
    let blocks = x.len() / SUPER_BLOCK;
    let mut scales = Vec::with_capacity(blocks);
    let mut bsums = Vec::with_capacity(x.len() / 16);
    let mut values = Vec::with_capacity(x.len());
    for block in x.chunks_exact(SUPER_BLOCK) {
        // The signed value of largest magnitude (the first one on ties, as ggml).
        let max = block
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        if max == 0.0 {
            scales.push(0.0);
            bsums.extend([0i16; SUPER_BLOCK / 16]);
            values.extend([0i8; SUPER_BLOCK]);
            continue;
        }
        let iscale = -127.0 / max;
        let start = values.len();
        values.extend(block.iter().map(|v| (iscale * v).round().min(127.0) as i8));
        bsums.extend(
            values[start..]
                .chunks_exact(16)
                .map(|c| c.iter().map(|&q| i16::from(q)).sum::<i16>()),
        );
        scales.push(1.0 / iscale);
    }
    SuperRows {
        k: x.len(),
        scales,
        bsums,
        values,
    }
}
