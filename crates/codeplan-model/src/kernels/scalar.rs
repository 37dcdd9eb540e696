//! The portable kernel: plain integer arithmetic, the reference for the SIMD one.

use half::f16;

use super::{QuantRows, WeightType, BLOCK};

/// Unpacks one weight block into 32 integers (Q5_0: q − 16; Q4_1: q; Q8_0: q) and its scale
/// and offset.
pub(super) fn unpack(kind: WeightType, block: &[u8]) -> ([i8; BLOCK], f32, f32) {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
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
            let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
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
    }
}

/// `out[r] = W · rows[r]` for one weight row `w`.
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
