//! The 32-value types on AVX-512 VNNI with the weights repacked sixteen output columns at a
//! time, so that one `vpdpbusd` yields sixteen columns' sums of four values and the block
//! scales apply sixteen columns per instruction. The row-at-a-time kernel of [`super::x86`]
//! spends most of its instructions on per-block scales; this layout does a fraction of the
//! work per product at every row count (measured: prefill and decode, one sequence or ten).
//!
//! A tile holds one 32-value block of sixteen weight rows in the bytes of sixteen ggml blocks
//! (no extra memory): the sixteen f16 scales (and `Q4_1`'s sixteen minimums), then the values
//! as unsigned bytes for `vpdpbusd` — `Q5_0`'s q (weight d · (q − 16)) as low nibbles packed as
//! ggml packs its repacked k-quants plus the fifth bits as byte masks, `Q4_1`'s nibbles the
//! same way, `Q8_0`'s q + 128 whole — and the offsets of 16 and 128 are taken off through each
//! activation block's integer sum.

use std::arch::x86_64::*;

use super::{scalar, QuantRows, WeightType, BLOCK};

/// Output columns per tile.
pub(super) const TILE_COLUMNS: usize = 16;
/// Activation rows per unit of work (each keeps an accumulator register).
const UNIT_ROWS: usize = 8;
/// Bytes of the sixteen f16 scales (and of `Q4_1`'s minimums).
const SCALES: usize = 2 * TILE_COLUMNS;
/// Bytes of one group of four values for sixteen columns: one register.
const GROUP: usize = 64;

/// Where a tile's parts lie, per type.
#[derive(Clone, Copy)]
struct Layout {
    /// Offset of the values.
    values: usize,
    /// Offset of `Q5_0`'s fifth-bit masks.
    fifth_bits: usize,
    /// Whole tile.
    bytes: usize,
}

fn layout(kind: WeightType) -> Layout {
    match kind {
        // Scales, 4 × 64 nibble bytes, 8 × 8 mask bytes: 16 × 22.
        WeightType::Q5_0 => Layout {
            values: SCALES,
            fifth_bits: SCALES + 4 * GROUP,
            bytes: SCALES + 4 * GROUP + 8 * 8,
        },
        // Scales, minimums, 4 × 64 nibble bytes: 16 × 20.
        WeightType::Q4_1 => Layout {
            values: 2 * SCALES,
            fifth_bits: 0,
            bytes: 2 * SCALES + 4 * GROUP,
        },
        // Scales, 8 × 64 bytes: 16 × 34.
        WeightType::Q8_0 => Layout {
            values: SCALES,
            fifth_bits: 0,
            bytes: SCALES + 8 * GROUP,
        },
        WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
    }
}

/// Repacks weights `(n, k)` of a 32-value type (ggml's row-major blocks, `n` a multiple of
/// [`TILE_COLUMNS`]) into tiles ordered by column group, then block; column groups are split
/// across threads (packing Qwen2.5-Coder-0.5B takes about a second on one core).
pub(super) fn pack(kind: WeightType, data: &[u8], n: usize, k: usize) -> Vec<u8> {
    let group_bytes = k / BLOCK * layout(kind).bytes;
    let mut out = vec![0u8; n / TILE_COLUMNS * group_bytes];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let groups_per_thread = (n / TILE_COLUMNS).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(groups_per_thread * group_bytes).enumerate() {
            scope.spawn(move || {
                for (g, tiles) in chunk.chunks_exact_mut(group_bytes).enumerate() {
                    pack_group(kind, data, i * groups_per_thread + g, k, tiles);
                }
            });
        }
    });
    out
}

/// Packs column group `t` (columns `16t..16t + 16`) into its tiles, one per block.
fn pack_group(kind: WeightType, data: &[u8], t: usize, k: usize, tiles: &mut [u8]) {
    let (lay, block_bytes, blocks) = (layout(kind), kind.block_bytes(), k / BLOCK);
    for (b, tile) in tiles.chunks_exact_mut(lay.bytes).enumerate() {
        for c in 0..TILE_COLUMNS {
            let at = ((t * TILE_COLUMNS + c) * blocks + b) * block_bytes;
            let block = &data[at..at + block_bytes];
            tile[2 * c..2 * c + 2].copy_from_slice(&block[..2]);
            let (q, _, _) = scalar::unpack(kind, block);
            match kind {
                WeightType::Q5_0 | WeightType::Q4_1 => {
                    if kind == WeightType::Q4_1 {
                        tile[SCALES + 2 * c..SCALES + 2 * c + 2].copy_from_slice(&block[2..4]);
                    }
                    let offset = if kind == WeightType::Q5_0 { 16 } else { 0 };
                    let u = |j: usize| (i16::from(q[j]) + offset) as u8;
                    for g in 0..4 {
                        for j in 0..4 {
                            let (a, b) = (u(8 * g + j), u(8 * g + 4 + j));
                            tile[lay.values + g * GROUP + c * 4 + j] =
                                (a & 0x0F) | ((b & 0x0F) << 4);
                            for (half, v) in [(0, a), (1, b)] {
                                if v & 0x10 != 0 {
                                    let bit = c * 4 + j;
                                    let byte = lay.fifth_bits + (2 * g + half) * 8 + bit / 8;
                                    tile[byte] |= 1 << (bit % 8);
                                }
                            }
                        }
                    }
                }
                WeightType::Q8_0 => {
                    for (j, &v) in q.iter().enumerate() {
                        let at = lay.values + j / 4 * GROUP + c * 4 + j % 4;
                        tile[at] = (i16::from(v) + 128) as u8;
                    }
                }
                WeightType::Q4K | WeightType::Q6K => unreachable!("{kind:?} has 256-value blocks"),
            }
        }
    }
}

/// `out (m, n) = rows · Wᵀ` for weights packed by [`pack`]; `out` holds `m · n` values.
///
/// # Safety
/// The processor must have AVX-512 F/BW/VNNI; `tiles` must be `pack`'s output for this kind
/// and `(n, k)`, every row `k` values wide, and `out` valid for `rows.len() · n` writes.
pub(super) unsafe fn matmul(
    kind: WeightType,
    tiles: &[u8],
    n: usize,
    k: usize,
    rows: &[QuantRows],
    out: usize,
) {
    let blocks = k / BLOCK;
    let tile_bytes = layout(kind).bytes;
    let row_units = rows.len().div_ceil(UNIT_ROWS);
    let units = n / TILE_COLUMNS * row_units;
    let task = |unit: usize| {
        let (t, r0) = (unit / row_units, unit % row_units * UNIT_ROWS);
        let part = Part {
            tiles: &tiles[t * blocks * tile_bytes..(t + 1) * blocks * tile_bytes],
            blocks,
            out: (out as *mut f32).add(r0 * n + t * TILE_COLUMNS),
            n,
        };
        let rows = &rows[r0..(r0 + UNIT_ROWS).min(rows.len())];
        match kind {
            WeightType::Q5_0 => part.rows::<Q5_0>(rows),
            WeightType::Q4_1 => part.rows::<Q4_1>(rows),
            _ => part.rows::<Q8_0>(rows),
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(units, |range| range.for_each(task));
}

// The kernel's type parameter (const generics take no enums).
const Q5_0: u8 = 0;
const Q4_1: u8 = 1;
const Q8_0: u8 = 2;

/// One column tile against up to [`UNIT_ROWS`] rows.
struct Part<'a> {
    tiles: &'a [u8],
    blocks: usize,
    out: *mut f32,
    n: usize,
}

impl Part<'_> {
    /// # Safety
    /// As [`matmul`].
    unsafe fn rows<const KIND: u8>(&self, rows: &[QuantRows]) {
        match rows.len() {
            8 => self.run::<KIND, 8>(rows),
            7 => self.run::<KIND, 7>(rows),
            6 => self.run::<KIND, 6>(rows),
            5 => self.run::<KIND, 5>(rows),
            4 => self.run::<KIND, 4>(rows),
            3 => self.run::<KIND, 3>(rows),
            2 => self.run::<KIND, 2>(rows),
            _ => self.run::<KIND, 1>(rows),
        }
    }

    /// # Safety
    /// As [`matmul`]; `rows.len() == R`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
    unsafe fn run<const KIND: u8, const R: usize>(&self, rows: &[QuantRows]) {
        debug_assert_eq!(rows.len(), R);
        let lay = layout(match KIND {
            Q5_0 => WeightType::Q5_0,
            Q4_1 => WeightType::Q4_1,
            _ => WeightType::Q8_0,
        });
        let low = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(0x10);
        let mut acc = [_mm512_setzero_ps(); R];
        // `Q4_1`'s minimums, m · Σx̂, summed apart and added last, as llama.cpp does.
        let mut mins = [_mm512_setzero_ps(); R];
        for b in 0..self.blocks {
            let tile = self.tiles.as_ptr().add(b * lay.bytes);
            let values = tile.add(lay.values);
            let mut isum = [_mm512_setzero_si512(); R];
            // Register i holds values 4i..4i + 4 of the sixteen columns.
            let mut add = |i: usize, w: __m512i| {
                for (s, row) in isum.iter_mut().zip(rows) {
                    let y = row.values.as_ptr().add(b * BLOCK + 4 * i) as *const i32;
                    *s = _mm512_dpbusd_epi32(*s, w, _mm512_set1_epi32(y.read_unaligned()));
                }
            };
            if KIND == Q8_0 {
                for i in 0..8 {
                    add(i, _mm512_loadu_si512(values.add(i * GROUP) as *const _));
                }
            } else {
                for g in 0..4 {
                    let w = _mm512_loadu_si512(values.add(g * GROUP) as *const _);
                    let mut lo = _mm512_and_si512(w, low);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low);
                    if KIND == Q5_0 {
                        let fifth = tile.add(lay.fifth_bits + 2 * g * 8) as *const u64;
                        lo = _mm512_mask_add_epi8(lo, fifth.read_unaligned(), lo, sixteen);
                        hi = _mm512_mask_add_epi8(hi, fifth.add(1).read_unaligned(), hi, sixteen);
                    }
                    add(2 * g, lo);
                    add(2 * g + 1, hi);
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile as *const __m256i));
            let offset = match KIND {
                Q5_0 => 16,
                Q4_1 => 0,
                _ => 128,
            };
            for (r, row) in rows.iter().enumerate() {
                // Σ (u − offset) · y, exactly (through the activations' integer sums), then
                // the two scales.
                let shift = _mm512_set1_epi32(offset * row.int_sums[b]);
                let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r], shift));
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(row.scales[b]));
                acc[r] = _mm512_fmadd_ps(dot, scale, acc[r]);
            }
            if KIND == Q4_1 {
                let m = _mm512_cvtph_ps(_mm256_loadu_si256(tile.add(SCALES) as *const __m256i));
                for (r, row) in rows.iter().enumerate() {
                    mins[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(row.sums[b]), mins[r]);
                }
            }
        }
        for (r, (a, m)) in acc.iter().zip(&mins).enumerate() {
            _mm512_storeu_ps(self.out.add(r * self.n), _mm512_add_ps(*a, *m));
        }
    }
}
