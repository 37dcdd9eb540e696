//! The AVX2 and AVX-512 VNNI kernels of the 32-value types (ggml's approach: unpack 32 weights
//! into one register, multiply-add bytes pairwise into 16-bit then 32-bit sums, scale in f32).

use std::arch::x86_64::*;
use std::sync::OnceLock;

use half::f16;

use super::{QuantRows, WeightType, BLOCK, ROWS};

/// Whether this processor runs the AVX2 kernel.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Whether this processor also runs the AVX-512 VNNI kernel.
pub(super) fn avx512_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// One block's 32 weights as bytes: Q5_0 as signed q − 16, Q4_1 as unsigned q, Q8_0 as
/// signed q.
#[target_feature(enable = "avx2")]
unsafe fn unpack(kind: WeightType, p: *const u8) -> __m256i {
    match kind {
        WeightType::Q5_0 => {
            let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
            // Where the fifth bit is clear the value is q − 16, i.e. q | 0xF0 as i8.
            let high = _mm256_andnot_si256(bytes_from_bits(qh), _mm256_set1_epi8(0xF0u8 as i8));
            _mm256_or_si256(nibbles(p.add(6)), high)
        }
        WeightType::Q4_1 => nibbles(p.add(4)),
        WeightType::Q8_0 => _mm256_loadu_si256(p.add(2) as *const __m256i),
        WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
    }
}

/// The AVX-512 VNNI kernel: two blocks per 512-bit register, one `vpdpbusd` per pair of
/// blocks and row. Needs an even number of blocks.
///
/// # Safety
/// As [`dot_rows`], and the processor must have AVX-512 F/BW/DQ/VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vnni")]
pub(super) unsafe fn dot_rows_avx512(
    kind: WeightType,
    w: &[u8],
    rows: &[QuantRows],
    out: &mut [f32],
) {
    debug_assert!(rows.len() <= ROWS && rows.len() == out.len());
    let bytes = kind.block_bytes();
    let blocks = w.len() / bytes;
    debug_assert!(blocks.is_multiple_of(2));
    let mut acc = [_mm512_setzero_ps(); ROWS];
    let mut offsets = [0f32; ROWS];
    let zero = _mm512_setzero_si512();
    for b in (0..blocks).step_by(2) {
        let (p0, p1) = (w.as_ptr().add(b * bytes), w.as_ptr().add((b + 1) * bytes));
        let d0 = f16::from_le_bytes([*p0, *p0.add(1)]).to_f32();
        let d1 = f16::from_le_bytes([*p1, *p1.add(1)]).to_f32();
        let x = _mm512_inserti64x4(
            _mm512_castsi256_si512(unpack(kind, p0)),
            unpack(kind, p1),
            1,
        );
        match kind {
            // Signed weights: VNNI multiplies unsigned by signed bytes, so |x| by y · sign(x)
            // (|−128| = 128 is right read unsigned; activations lie in −127..=127).
            WeightType::Q5_0 | WeightType::Q8_0 => {
                let ax = _mm512_abs_epi8(x);
                let negative = _mm512_movepi8_mask(x);
                for (r, row) in rows.iter().enumerate() {
                    let y = _mm512_loadu_si512(row.values.as_ptr().add(b * BLOCK) as *const _);
                    let sy = _mm512_mask_sub_epi8(y, negative, zero, y);
                    let dot = _mm512_dpbusd_epi32(zero, ax, sy);
                    let scale = _mm512_insertf32x8(
                        _mm512_castps256_ps512(_mm256_set1_ps(d0 * row.scales[b])),
                        _mm256_set1_ps(d1 * row.scales[b + 1]),
                        1,
                    );
                    acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r]);
                }
            }
            WeightType::Q4_1 => {
                let m0 = f16::from_le_bytes([*p0.add(2), *p0.add(3)]).to_f32();
                let m1 = f16::from_le_bytes([*p1.add(2), *p1.add(3)]).to_f32();
                for (r, row) in rows.iter().enumerate() {
                    let y = _mm512_loadu_si512(row.values.as_ptr().add(b * BLOCK) as *const _);
                    let dot = _mm512_dpbusd_epi32(zero, x, y);
                    let scale = _mm512_insertf32x8(
                        _mm512_castps256_ps512(_mm256_set1_ps(d0 * row.scales[b])),
                        _mm256_set1_ps(d1 * row.scales[b + 1]),
                        1,
                    );
                    acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r]);
                    offsets[r] += m0 * row.sums[b] + m1 * row.sums[b + 1];
                }
            }
            WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = _mm512_reduce_add_ps(acc[r]) + offsets[r];
    }
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
            // Signed weights: maddubs multiplies unsigned by signed bytes, so |x| by y · sign(x).
            WeightType::Q5_0 | WeightType::Q8_0 => {
                let x = unpack(kind, p);
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
            WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = hsum(acc[r]) + offsets[r];
    }
}
