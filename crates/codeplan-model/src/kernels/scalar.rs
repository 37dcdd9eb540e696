//! The portable kernels: plain integer arithmetic, the reference for the SIMD ones.

use half::f16;

use super::{QuantRows, SuperRows, WeightType, BLOCK, SUPER_BLOCK};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Unpacks one weight block of a 32-value type into 32 integers (Q5_0: q − 16; Q4_1: q;
/// Q8_0: q) and its scale and offset.
pub(super) fn unpack(kind: WeightType, block: &[u8]) -> ([i8; BLOCK], f32, f32) {
    let d = f16_at(block, 0);
    let mut q = [0i8; BLOCK];
    match kind {
        WeightType::Q5_0 => {
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            let qs = &block[6..22];
            for j in 0..BLOCK / 2 {
                let lo = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
                let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                q[j] = lo as i8 - 16;
                q[j + BLOCK / 2] = hi as i8 - 16;
            }
            (q, d, 0.0)
        }
        WeightType::Q4_1 => {
            let m = f16_at(block, 2);
            let qs = &block[4..20];
            for j in 0..BLOCK / 2 {
                q[j] = (qs[j] & 0x0F) as i8;
                q[j + BLOCK / 2] = (qs[j] >> 4) as i8;
            }
            (q, d, m)
        }
        WeightType::Q8_0 => {
            for (q, &b) in q.iter_mut().zip(&block[2..34]) {
                *q = b as i8;
            }
            (q, d, 0.0)
        }
        WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
    }
}

/// `out[r] = W · rows[r]` for one weight row `w` of a 32-value type.
pub(super) fn dot_rows(kind: WeightType, w: &[u8], rows: &[QuantRows], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for (b, block) in w.chunks_exact(kind.block_bytes()).enumerate() {
        let (q, d, m) = unpack(kind, block);
        for (row, o) in rows.iter().zip(out.iter_mut()) {
            let a = &row.values[b * BLOCK..(b + 1) * BLOCK];
            let isum: i32 = q
                .iter()
                .zip(a)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            *o += d * row.scales[b] * isum as f32 + m * row.sums[b];
        }
    }
}

/// One k-quant super-block unpacked: 256 integers, the integer scale of each run of
/// `256 / scales.len()` of them, their integer minimum (Q4_K; zero for Q6_K), and the float
/// factors of the scales and the minimums.
pub(super) struct SuperBlock {
    /// The integers (Q4_K: 0..16; Q6_K: −32..32).
    pub q: [i8; SUPER_BLOCK],
    /// Sub-block scales (Q4_K: 8 of 6 bits; Q6_K: 16 signed bytes).
    pub scales: Vec<i32>,
    /// Sub-block minimums (Q4_K: 8 of 6 bits; Q6_K: zeros).
    pub mins: Vec<i32>,
    /// Factor of the scales.
    pub d: f32,
    /// Factor of the minimums.
    pub dmin: f32,
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and minimum of Q4_K sub-block `j`.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Unpacks one Q4_K or Q6_K super-block (ggml's `dequantize_row_q4_K` / `_q6_K` order).
pub(super) fn unpack_super(kind: WeightType, b: &[u8]) -> SuperBlock {
    let mut q = [0i8; SUPER_BLOCK];
    match kind {
        WeightType::Q4K => {
            let qs = &b[16..144];
            // Each 32 bytes hold 64 values: low nibbles first, then high nibbles.
            for (c, bytes) in qs.chunks_exact(32).enumerate() {
                for (l, &byte) in bytes.iter().enumerate() {
                    q[64 * c + l] = (byte & 0x0F) as i8;
                    q[64 * c + 32 + l] = (byte >> 4) as i8;
                }
            }
            let (scales, mins) = (0..8)
                .map(|j| {
                    let (s, m) = scale_min_k4(j, &b[4..16]);
                    (i32::from(s), i32::from(m))
                })
                .unzip();
            SuperBlock {
                q,
                scales,
                mins,
                d: f16_at(b, 0),
                dmin: f16_at(b, 2),
            }
        }
        WeightType::Q6K => {
            let (ql, qh) = (&b[0..128], &b[128..192]);
            // Each half of 128 values takes 64 bytes of low 4 bits and 32 of high 2 bits.
            for h in 0..2 {
                let (ql, qh, q) = (&ql[64 * h..], &qh[32 * h..], &mut q[128 * h..]);
                for l in 0..32 {
                    q[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                    q[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                }
            }
            SuperBlock {
                q,
                scales: b[192..208].iter().map(|&s| i32::from(s as i8)).collect(),
                mins: vec![0; 16],
                d: f16_at(b, 208),
                dmin: 0.0,
            }
        }
        WeightType::Q5_0 | WeightType::Q4_1 | WeightType::Q8_0 => {
            unreachable!("{kind:?} has 32-value blocks")
        }
    }
}

/// `out[r] = W · rows[r]` for one weight row `w` of a k-quant type: per super-block an exact
/// integer sum, scaled once by `d · row scale` (and the minimums' by `dmin · row scale`).
pub(super) fn dot_rows_super(kind: WeightType, w: &[u8], rows: &[SuperRows], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for (b, block) in w.chunks_exact(kind.block_bytes()).enumerate() {
        let sb = unpack_super(kind, block);
        let run = SUPER_BLOCK / sb.scales.len();
        for (row, o) in rows.iter().zip(out.iter_mut()) {
            let a = &row.values[b * SUPER_BLOCK..(b + 1) * SUPER_BLOCK];
            let (mut isum, mut msum) = (0i32, 0i32);
            for (j, (q, a)) in sb.q.chunks_exact(run).zip(a.chunks_exact(run)).enumerate() {
                let dot: i32 = q
                    .iter()
                    .zip(a)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .sum();
                let sum: i32 = a.iter().map(|&y| i32::from(y)).sum();
                isum += sb.scales[j] * dot;
                msum += sb.mins[j] * sum;
            }
            let dy = row.scales[b];
            *o += sb.d * dy * isum as f32 - sb.dmin * dy * msum as f32;
        }
    }
}
