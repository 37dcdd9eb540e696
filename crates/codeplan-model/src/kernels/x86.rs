//! The AVX2 kernel (ggml's approach: unpack 32 weights into one register, multiply-add bytes
//! pairwise into 16-bit then 32-bit sums, scale in f32).

use std::arch::x86_64::*;
use std::sync::OnceLock;

use half::f16;

use super::{QuantRows, WeightType, BLOCK, ROWS};

/// Whether this processor runs the kernel.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Byte `i` is 0xFF where bit `i` of `x` is set, else 0.
#[target_feature(enable = "avx2")]
unsafe fn bytes_from_bits(x: u32) -> __m256i {
    let shuffle = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuffle);
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, others), _mm256_set1_epi64x(-1))
}

/// The 32 4-bit values of a block's 16 bytes: low nibbles first, then high nibbles.
#[target_feature(enable = "avx2")]
unsafe fn nibbles(ptr: *const u8) -> __m256i {
    let packed = _mm_loadu_si128(ptr as *const __m128i);
    let low = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(packed, low);
    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
    _mm256_set_m128i(hi, lo)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `out[r] = W · rows[r]` for one weight row `w`; `rows.len() <= ROWS`.
///
/// # Safety
/// The processor must have AVX2 and FMA; `w` must hold `k / 32` whole blocks and every row
/// `k` values.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_rows(kind: WeightType, w: &[u8], rows: &[QuantRows], out: &mut [f32]) {
    debug_assert!(rows.len() <= ROWS && rows.len() == out.len());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); ROWS];
    let mut offsets = [0f32; ROWS];
    let bytes = kind.block_bytes();
    for (b, block) in w.chunks_exact(bytes).enumerate() {
        let p = block.as_ptr();
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        match kind {
            WeightType::Q5_0 => {
                let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                // Where the fifth bit is clear the value is q − 16, i.e. q | 0xF0 as i8.
                let high = _mm256_andnot_si256(bytes_from_bits(qh), _mm256_set1_epi8(0xF0u8 as i8));
                let x = _mm256_or_si256(nibbles(p.add(6)), high);
                let ax = _mm256_sign_epi8(x, x);
                for (r, row) in rows.iter().enumerate() {
                    let y =
                        _mm256_loadu_si256(row.values.as_ptr().add(b * BLOCK) as *const __m256i);
                    let sy = _mm256_sign_epi8(y, x);
                    let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones);
                    let scale = _mm256_set1_ps(d * row.scales[b]);
                    acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
                }
            }
            WeightType::Q4_1 => {
                let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
                let x = nibbles(p.add(4));
                for (r, row) in rows.iter().enumerate() {
                    let y =
                        _mm256_loadu_si256(row.values.as_ptr().add(b * BLOCK) as *const __m256i);
                    let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones);
                    let scale = _mm256_set1_ps(d * row.scales[b]);
                    acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
                    offsets[r] += m * row.sums[b];
                }
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = hsum(acc[r]) + offsets[r];
    }
}
