//! The AVX-512 VNNI and AVX2 kernels of the k-quants `Q4_K` and `Q6_K` against `Q8_K`
//! activations (llama.cpp's scheme): weights unpacked to unsigned bytes, multiplied by the
//! activation bytes pairwise into 16 bits, then by the 16-bit sub-block scales into 32-bit
//! sums, so each super-block needs one conversion to f32 per row.
//!
//! No sum can overflow: a 16-bit pair is at most 2 · 63 · 127 = 16002 (`Q6_K`; `Q4_K` 3810),
//! and a 32-bit lane adds at most 8 such pairs times a scale of at most 128.

use std::arch::x86_64::*;

use half::f16;

use super::{SuperRows, WeightType, ROWS, SUPER_BLOCK};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// `Q6_K` values of one 128-value half as two registers of 64 unsigned bytes (values 0..64
/// and 64..128), from `ql` = its 64 low-bit bytes and `qh` = `[qh | qh >> 2]` of its 32
/// high-bit bytes: the low and high nibbles of `ql` take their top 2 bits from `qh`'s bits
/// 0..2 and 4..6.
#[target_feature(enable = "avx512f,avx512bw")]
fn q6k_half_512(ql: __m512i, qh: __m512i) -> [__m512i; 2] {
    let (low4, low2) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
    let top0 = _mm512_slli_epi16::<4>(_mm512_and_si512(qh, low2));
    let top4 = _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(qh), low2));
    [
        _mm512_or_si512(_mm512_and_si512(ql, low4), top0),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), low4), top4),
    ]
}

/// `Q6_K` values of one 128-value half as four registers of 32 unsigned bytes, from its
/// low-bit bytes `ql0`, `ql1` (32 each) and its 32 high-bit bytes `qh`.
#[target_feature(enable = "avx2")]
fn q6k_half_256(ql0: __m256i, ql1: __m256i, qh: __m256i) -> [__m256i; 4] {
    let (low4, low2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
    let top0 = _mm256_slli_epi16::<4>(_mm256_and_si256(qh, low2));
    let top2 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(qh), low2));
    let top4 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(qh), low2));
    let top6 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(qh), low2));
    let high0 = _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4);
    let high1 = _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4);
    [
        _mm256_or_si256(_mm256_and_si256(ql0, low4), top0),
        _mm256_or_si256(_mm256_and_si256(ql1, low4), top2),
        _mm256_or_si256(high0, top4),
        _mm256_or_si256(high1, top6),
    ]
}

/// The eight 6-bit scales and eight 6-bit minimums of a `Q4_K` super-block, unpacked from its
/// 12 bytes at once (ggml's `utmp` trick; [`super::scalar`] decodes them one by one).
fn q4k_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    // Sub-blocks 0..4 keep their low 6 bits in bytes 0..4 (scales) and 4..8 (mins); 4..8 take
    // 4 bits from bytes 8..12 and their top 2 bits from the high bits of bytes 0..8.
    let scales_lo = w0 & LOW6;
    let scales_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let mins_lo = w1 & LOW6;
    let mins_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes();
    (join(scales_lo, scales_hi), join(mins_lo, mins_hi))
}

/// 16-bit lanes `j` holding `m[j / 2]`: each `Q4_K` minimum against the two 16-value
/// activation sums of its sub-block.
#[target_feature(enable = "avx2")]
fn pairs16(m: [u8; 8]) -> __m256i {
    let m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(m)));
    _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m))
}

/// Loads a row's sixteen 16-value sums of super-block `b`.
///
/// # Safety
/// The row must have super-block `b`.
#[target_feature(enable = "avx2")]
unsafe fn bsums(row: &SuperRows, b: usize) -> __m256i {
    debug_assert!(row.bsums.len() >= 16 * (b + 1));
    // SAFETY: 16 i16 of super-block b are inside `bsums` (the caller's contract).
    unsafe { _mm256_loadu_si256(row.bsums.as_ptr().add(16 * b) as *const __m256i) }
}

/// Lane-index tables for `vpermw`: entry `t` spreads 16-bit scale `base + i / width` over
/// lane `i`.
static Q4K_SPREAD: [[i16; 32]; 4] = spread(2, 16);
static Q6K_SPREAD: [[i16; 32]; 4] = spread(4, 8);

const fn spread(per_register: usize, width: usize) -> [[i16; 32]; 4] {
    let mut t = [[0i16; 32]; 4];
    let mut r = 0;
    while r < 4 {
        let mut i = 0;
        while i < 32 {
            t[r][i] = (per_register * r + i / width) as i16;
            i += 1;
        }
        r += 1;
    }
    t
}

/// `out[r] = W · rows[r]` for one weight row `w` of `Q4_K` or `Q6_K`, 64 values per register.
///
/// # Safety
/// The processor must have AVX-512 F/BW/VNNI and AVX2; `w` must hold whole super-blocks and
/// every row that many super-blocks of values; `rows.len() == out.len() <= ROWS`.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_rows_avx512(
    kind: WeightType,
    w: &[u8],
    rows: &[SuperRows],
    out: &mut [f32],
) {
    assert!(rows.len() <= ROWS && rows.len() == out.len());
    let bytes = kind.block_bytes();
    let blocks = w.len() / bytes;
    assert!(rows.iter().all(|r| r.values.len() >= blocks * SUPER_BLOCK));
    let mut acc = [_mm512_setzero_ps(); ROWS];
    let low4 = _mm512_set1_epi8(0x0F);
    for (b, block) in w.chunks_exact(bytes).enumerate() {
        let p = block.as_ptr();
        // Weights of the super-block as four registers of 64 unsigned bytes in activation
        // order, with the 16-bit scale of each byte pair's sub-block.
        let mut x = [_mm512_setzero_si512(); 4];
        let mut scale = [_mm512_setzero_si512(); 4];
        let (d, dmin, sub_scales);
        match kind {
            WeightType::Q4K => {
                d = f16_at(block, 0);
                dmin = f16_at(block, 2);
                let (sc, m) = q4k_scales(&block[4..16]);
                let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(
                    i64::from_le_bytes(sc),
                )));
                for c in 0..4 {
                    // 32 bytes: sub-block 2c in the low nibbles, 2c + 1 in the high ones.
                    let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                        p.add(16 + 32 * c) as *const __m256i
                    ));
                    let shifted = _mm512_mask_srli_epi16::<4>(q, 0xFFFF_0000, q);
                    x[c] = _mm512_and_si512(shifted, low4);
                    let idx = _mm512_loadu_si512(Q4K_SPREAD[c].as_ptr() as *const _);
                    scale[c] = _mm512_permutexvar_epi16(idx, sc16);
                }
                sub_scales = pairs16(m);
            }
            WeightType::Q6K => {
                d = f16_at(block, 208);
                dmin = 0.0;
                let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
                for h in 0..2 {
                    let ql = _mm512_loadu_si512(p.add(64 * h) as *const _);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                    let qh = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(qh),
                        _mm256_srli_epi16::<2>(qh),
                    );
                    [x[2 * h], x[2 * h + 1]] = q6k_half_512(ql, qh);
                }
                let sc512 = _mm512_castsi256_si512(sc);
                for (r, s) in scale.iter_mut().enumerate() {
                    let idx = _mm512_loadu_si512(Q6K_SPREAD[r].as_ptr() as *const _);
                    *s = _mm512_permutexvar_epi16(idx, sc512);
                }
                sub_scales = sc;
            }
            WeightType::Q5_0 | WeightType::Q4_1 | WeightType::Q8_0 => {
                unreachable!("{kind:?} has 32-value blocks")
            }
        }
        for (r, row) in rows.iter().enumerate() {
            let y = row.values.as_ptr().add(b * SUPER_BLOCK);
            let mut isum = _mm512_setzero_si512();
            for c in 0..4 {
                let yc = _mm512_loadu_si512(y.add(64 * c) as *const _);
                isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(x[c], yc), scale[c]);
            }
            // Σ per sub-block of (scale or minimum) × (its activations' sum).
            let sub = _mm256_madd_epi16(bsums(row, b), sub_scales);
            let dy = row.scales[b];
            if kind == WeightType::Q6K {
                // The stored values are q + 32: subtract 32 · Σ scale · Σ y, exactly.
                let offset = _mm512_zextsi256_si512(_mm256_slli_epi32::<5>(sub));
                isum = _mm512_sub_epi32(isum, offset);
            } else {
                let msum = _mm512_cvtepi32_ps(_mm512_zextsi256_si512(sub));
                acc[r] = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * dy), msum, acc[r]);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d * dy), _mm512_cvtepi32_ps(isum), acc[r]);
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = _mm512_reduce_add_ps(acc[r]);
    }
}

/// `out[r] = W · rows[r]` for one weight row `w` of `Q4_K` or `Q6_K`, 32 values per register.
///
/// # Safety
/// The processor must have AVX2 and FMA; `w` must hold whole super-blocks and every row that
/// many super-blocks of values; `rows.len() == out.len() <= ROWS`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_rows_avx2(
    kind: WeightType,
    w: &[u8],
    rows: &[SuperRows],
    out: &mut [f32],
) {
    assert!(rows.len() <= ROWS && rows.len() == out.len());
    let bytes = kind.block_bytes();
    let blocks = w.len() / bytes;
    assert!(rows.iter().all(|r| r.values.len() >= blocks * SUPER_BLOCK));
    let mut acc = [_mm256_setzero_ps(); ROWS];
    let low4 = _mm256_set1_epi8(0x0F);
    for (b, block) in w.chunks_exact(bytes).enumerate() {
        let p = block.as_ptr();
        let mut x = [_mm256_setzero_si256(); 8];
        let mut scale = [_mm256_setzero_si256(); 8];
        let (d, dmin, sub_scales);
        match kind {
            WeightType::Q4K => {
                d = f16_at(block, 0);
                dmin = f16_at(block, 2);
                let (sc, m) = q4k_scales(&block[4..16]);
                for c in 0..4 {
                    let q = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
                    x[2 * c] = _mm256_and_si256(q, low4);
                    x[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
                    scale[2 * c] = _mm256_set1_epi16(i16::from(sc[2 * c]));
                    scale[2 * c + 1] = _mm256_set1_epi16(i16::from(sc[2 * c + 1]));
                }
                sub_scales = pairs16(m);
            }
            WeightType::Q6K => {
                d = f16_at(block, 208);
                dmin = 0.0;
                let s = &block[192..208];
                for h in 0..2 {
                    let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
                    let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                    [x[4 * h], x[4 * h + 1], x[4 * h + 2], x[4 * h + 3]] =
                        q6k_half_256(ql0, ql1, qh);
                }
                for (t, v) in scale.iter_mut().enumerate() {
                    // 32 values = two 16-value sub-blocks, one per 128-bit half.
                    *v = _mm256_set_m128i(
                        _mm_set1_epi16(i16::from(s[2 * t + 1] as i8)),
                        _mm_set1_epi16(i16::from(s[2 * t] as i8)),
                    );
                }
                sub_scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(s.as_ptr() as *const __m128i));
            }
            WeightType::Q5_0 | WeightType::Q4_1 | WeightType::Q8_0 => {
                unreachable!("{kind:?} has 32-value blocks")
            }
        }
        for (r, row) in rows.iter().enumerate() {
            let y = row.values.as_ptr().add(b * SUPER_BLOCK);
            let mut isum = _mm256_setzero_si256();
            for t in 0..8 {
                let yt = _mm256_loadu_si256(y.add(32 * t) as *const __m256i);
                let pairs = _mm256_maddubs_epi16(x[t], yt);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(pairs, scale[t]));
            }
            let sub = _mm256_madd_epi16(bsums(row, b), sub_scales);
            let dy = row.scales[b];
            if kind == WeightType::Q6K {
                isum = _mm256_sub_epi32(isum, _mm256_slli_epi32::<5>(sub));
            } else {
                let msum = _mm256_cvtepi32_ps(sub);
                acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy), msum, acc[r]);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(isum), acc[r]);
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = hsum(acc[r]);
    }
}

#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}
