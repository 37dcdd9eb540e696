//! Prefill's `Q5_0` product on AVX-512 VNNI with the weights repacked sixteen output columns
//! at a time, so that one `vpdpbusd` yields sixteen columns' sums of four values and the block
//! scales are applied sixteen columns per instruction. The row-at-a-time kernel of [`super::x86`]
//! spends most of its instructions on per-block scales; with many activation rows (prefill)
//! this layout does about a quarter of the work per product.
//!
//! A tile holds one 32-value block of sixteen weight rows in the bytes of sixteen `Q5_0` blocks
//! (no extra memory per tile): the sixteen f16 scales, the low nibbles of each group of eight
//! values packed as ggml's repacked k-quants pack them, and the fifth bits as byte masks.

use std::arch::x86_64::*;

use super::{QuantRows, BLOCK};

/// Output columns per tile.
pub(super) const TILE_COLUMNS: usize = 16;
/// Activation rows per unit of work (each keeps an accumulator register).
const UNIT_ROWS: usize = 8;
/// Bytes of one tile: 16 scales, 4 × 64 nibble bytes, 8 × 8 fifth-bit mask bytes.
const TILE_BYTES: usize = 2 * TILE_COLUMNS + 4 * 64 + 8 * 8;
const NIBBLES: usize = 2 * TILE_COLUMNS;
const FIFTH_BITS: usize = NIBBLES + 4 * 64;

/// Repacks `Q5_0` weights `(n, k)` (ggml's row-major blocks, `n` a multiple of
/// [`TILE_COLUMNS`]) into tiles ordered by column group, then block; column groups are split
/// across threads (packing Qwen2.5-Coder-0.5B takes about a second on one core).
pub(super) fn pack_q5_0(data: &[u8], n: usize, k: usize) -> Vec<u8> {
    let group_bytes = k / BLOCK * TILE_BYTES;
    let mut out = vec![0u8; n / TILE_COLUMNS * group_bytes];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let groups_per_thread = (n / TILE_COLUMNS).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(groups_per_thread * group_bytes).enumerate() {
            scope.spawn(move || {
                for (g, tiles) in chunk.chunks_exact_mut(group_bytes).enumerate() {
                    pack_group(data, i * groups_per_thread + g, k, tiles);
                }
            });
        }
    });
    out
}

/// Packs column group `t` (columns `16t..16t + 16`) into its tiles, one per block.
fn pack_group(data: &[u8], t: usize, k: usize, tiles: &mut [u8]) {
    const BLOCK_BYTES: usize = 22;
    let blocks = k / BLOCK;
    for (b, tile) in tiles.chunks_exact_mut(TILE_BYTES).enumerate() {
        for c in 0..TILE_COLUMNS {
            let at = ((t * TILE_COLUMNS + c) * blocks + b) * BLOCK_BYTES;
            let block = &data[at..at + BLOCK_BYTES];
            tile[2 * c..2 * c + 2].copy_from_slice(&block[..2]);
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            // q[j] in 0..32 (the weight is d · (q − 16)): low nibble, then the fifth bit.
            let mut q = [0u8; BLOCK];
            for (j, v) in q.iter_mut().enumerate() {
                let low = if j < 16 {
                    block[6 + j] & 0x0F
                } else {
                    block[6 + j - 16] >> 4
                };
                *v = low | ((((qh >> j) & 1) as u8) << 4);
            }
            for g in 0..4 {
                for j in 0..4 {
                    let (a, b) = (q[8 * g + j], q[8 * g + 4 + j]);
                    tile[NIBBLES + g * 64 + c * 4 + j] = (a & 0x0F) | ((b & 0x0F) << 4);
                    for (half, v) in [(0, a), (1, b)] {
                        if v & 0x10 != 0 {
                            let bit = c * 4 + j;
                            let byte = FIFTH_BITS + (2 * g + half) * 8 + bit / 8;
                            tile[byte] |= 1 << (bit % 8);
                        }
                    }
                }
            }
        }
    }
}

/// `out (m, n) = rows · Wᵀ` for weights packed by [`pack_q5_0`]; `out` holds `m · n` values.
///
/// # Safety
/// The processor must have AVX-512 F/BW/VNNI; `tiles` must be `pack_q5_0`'s output for this
/// `(n, k)`, every row `k` values wide, and `out` valid for `rows.len() · n` writes.
pub(super) unsafe fn matmul_q5_0(tiles: &[u8], n: usize, k: usize, rows: &[QuantRows], out: usize) {
    let blocks = k / BLOCK;
    // Each activation block's integer sum, for the weights' offset of 16.
    let sums: Vec<i32> = rows
        .iter()
        .flat_map(|r| {
            r.values
                .chunks_exact(BLOCK)
                .map(|b| b.iter().map(|&v| i32::from(v)).sum::<i32>())
        })
        .collect();
    let row_units = rows.len().div_ceil(UNIT_ROWS);
    let units = n / TILE_COLUMNS * row_units;
    let task = |unit: usize| {
        let (t, r0) = (unit / row_units, unit % row_units * UNIT_ROWS);
        let part = Part {
            tiles: &tiles[t * blocks * TILE_BYTES..(t + 1) * blocks * TILE_BYTES],
            blocks,
            sums: &sums[r0 * blocks..],
            out: (out as *mut f32).add(r0 * n + t * TILE_COLUMNS),
            n,
        };
        let rows = &rows[r0..(r0 + UNIT_ROWS).min(rows.len())];
        match rows.len() {
            8 => part.run::<8>(rows),
            7 => part.run::<7>(rows),
            6 => part.run::<6>(rows),
            5 => part.run::<5>(rows),
            4 => part.run::<4>(rows),
            3 => part.run::<3>(rows),
            2 => part.run::<2>(rows),
            _ => part.run::<1>(rows),
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(units, |range| range.for_each(task));
}

/// One column tile against up to [`UNIT_ROWS`] rows.
struct Part<'a> {
    tiles: &'a [u8],
    blocks: usize,
    sums: &'a [i32],
    out: *mut f32,
    n: usize,
}

impl Part<'_> {
    /// # Safety
    /// As [`matmul_q5_0`]; `rows.len() == R`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
    unsafe fn run<const R: usize>(&self, rows: &[QuantRows]) {
        debug_assert_eq!(rows.len(), R);
        let low = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(0x10);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..self.blocks {
            let tile = self.tiles.as_ptr().add(b * TILE_BYTES);
            let mut isum = [_mm512_setzero_si512(); R];
            for g in 0..4 {
                let w = _mm512_loadu_si512(tile.add(NIBBLES + g * 64) as *const _);
                let fifth = tile.add(FIFTH_BITS + 2 * g * 8) as *const u64;
                let lo = _mm512_and_si512(w, low);
                let lo = _mm512_mask_add_epi8(lo, fifth.read_unaligned(), lo, sixteen);
                let hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low);
                let hi = _mm512_mask_add_epi8(hi, fifth.add(1).read_unaligned(), hi, sixteen);
                for (s, row) in isum.iter_mut().zip(rows) {
                    let y = row.values.as_ptr().add(b * BLOCK + 8 * g) as *const i32;
                    *s = _mm512_dpbusd_epi32(*s, lo, _mm512_set1_epi32(y.read_unaligned()));
                    *s = _mm512_dpbusd_epi32(*s, hi, _mm512_set1_epi32(y.add(1).read_unaligned()));
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile as *const __m256i));
            for (r, row) in rows.iter().enumerate() {
                // Σ (q − 16) · y, exactly, then the two scales.
                let offset = _mm512_set1_epi32(16 * self.sums[r * self.blocks + b]);
                let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r], offset));
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(row.scales[b]));
                acc[r] = _mm512_fmadd_ps(dot, scale, acc[r]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(self.out.add(r * self.n), *a);
        }
    }
}
