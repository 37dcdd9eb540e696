//! Every weight type multiplied four ways: the dispatched (SIMD) kernel, the portable one,
//! the exact product of the dequantised weights and dequantised activations (f64), and
//! candle's f32 product of the dequantised weights with the original activations.

use super::*;

/// f32 rounding allowed between kernels that sum the same exact products in another order,
/// relative to Σ|w·x|: each output adds at most k / 32 block terms, each after a few
/// roundings of 2⁻²⁴, so 1e-5 is far above the worst case yet far below any wrong term.
const ROUNDING: f64 = 1e-5;

/// A random-looking but fixed matrix and input, quantised by candle and by [`quantize_input`].
struct Case {
    kind: WeightType,
    fast: QuantMatrix,
    /// The weights in ggml's row-major blocks (the portable kernel's layout).
    raw: Vec<u8>,
    x: Vec<f32>,
    /// Dequantised weights `(n, k)`, as candle reads them.
    w: Vec<f32>,
    n: usize,
    k: usize,
}

impl Case {
    fn new(dtype: GgmlDType, m: usize, n: usize, k: usize) -> Self {
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 0.2)
            .collect();
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104_729 % 997) as f32 / 997.0 - 0.5) * 3.0)
            .collect();
        // One all-zero stretch (a zero activation scale) in the second row.
        if m > 1 {
            x[k..k + BLOCK.max(k / 2)].fill(0.0);
        }
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, dtype).unwrap();
        let fast = QuantMatrix::from_qtensor_any(&q).unwrap().unwrap();
        let raw = q.data().unwrap().into_owned();
        let w = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        Case {
            kind: fast.kind,
            fast,
            raw,
            x,
            w,
            n,
            k,
        }
    }

    fn weight_row(&self, j: usize) -> &[u8] {
        let bytes = self.k / self.kind.block_values() * self.kind.block_bytes();
        &self.raw[j * bytes..(j + 1) * bytes]
    }
}

/// The activations as the kernels see them, dequantised (value × its block's scale).
fn dequantized(rows: &Activations) -> Vec<Vec<f64>> {
    match rows {
        Activations::Blocks(rows) => rows
            .iter()
            .map(|r| {
                let q = r.values.iter().enumerate();
                q.map(|(i, &q)| f64::from(q) * f64::from(r.scales[i / BLOCK]))
                    .collect()
            })
            .collect(),
        Activations::Super(rows) => rows
            .iter()
            .map(|r| {
                let q = r.values.iter().enumerate();
                q.map(|(i, &q)| f64::from(q) * f64::from(r.scales[i / SUPER_BLOCK]))
                    .collect()
            })
            .collect(),
    }
}

/// The portable kernel's products of every row with weight row `j`.
fn scalar_column(case: &Case, rows: &Activations, j: usize) -> Vec<f32> {
    let w = case.weight_row(j);
    let mut out = vec![0f32; rows.len()];
    match rows {
        Activations::Blocks(r) => scalar::dot_rows(case.kind, w, r, &mut out),
        Activations::Super(r) => scalar::dot_rows_super(case.kind, w, r, &mut out),
    }
    out
}

/// `Q4_1`'s offsets use the f16-rounded Σ d·q of each activation block, not Σ x̂: at most
/// 2⁻¹¹ of |m · sum| per block apart.
fn offset_rounding(case: &Case, rows: &Activations, r: usize, j: usize) -> f64 {
    let (WeightType::Q4_1, Activations::Blocks(rows)) = (case.kind, rows) else {
        return 0.0;
    };
    let blocks = case.weight_row(j).chunks_exact(case.kind.block_bytes());
    blocks
        .enumerate()
        .map(|(b, block)| {
            let (_, _, m) = scalar::unpack(case.kind, block);
            f64::from(m.abs() * rows[r].sums[b].abs()) * 2f64.powi(-11)
        })
        .sum()
}

fn check(dtype: GgmlDType, m: usize, n: usize, k: usize) {
    let case = Case::new(dtype, m, n, k);
    let xt = Tensor::from_vec(case.x.clone(), (m, k), &Device::Cpu).unwrap();
    let got = case.fast.forward(&xt).unwrap().to_vec2::<f32>().unwrap();
    let wt = Tensor::from_vec(case.w.clone(), (n, k), &Device::Cpu).unwrap();
    let candle = xt
        .matmul(&wt.t().unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let rows = Activations::quantize(&case.x, k, case.kind.activation_format());
    let xq = dequantized(&rows);
    for j in 0..n {
        let scalar = scalar_column(&case, &rows, j);
        let w = &case.w[j * k..(j + 1) * k];
        for r in 0..m {
            let x = &case.x[r * k..(r + 1) * k];
            let (g, s, c) = (
                f64::from(got[r][j]),
                f64::from(scalar[r]),
                f64::from(candle[r][j]),
            );
            // Σ|w·x̂| and Σ|w·x|: the sizes rounding errors are relative to.
            let size_q: f64 = w
                .iter()
                .zip(&xq[r])
                .map(|(&a, b)| f64::from(a).abs() * b.abs())
                .sum();
            let size: f64 = w.iter().zip(x).map(|(&a, &b)| f64::from(a * b).abs()).sum();
            let exact: f64 = w.iter().zip(&xq[r]).map(|(&a, b)| f64::from(a) * b).sum();
            // SIMD vs portable: the same integer sums, scaled and added in another order.
            let tol = ROUNDING * size_q;
            assert!(
                (g - s).abs() <= tol,
                "{dtype:?} {m}x{n}x{k} ({r},{j}): SIMD {g} vs scalar {s}"
            );
            // Both vs the dequantise-then-dot product: equal in exact arithmetic.
            let tol = ROUNDING * size_q + offset_rounding(&case, &rows, r, j);
            assert!(
                (s - exact).abs() <= tol,
                "{dtype:?} {m}x{n}x{k} ({r},{j}): {s} vs exact {exact}"
            );
            // vs candle's f32 product: the activations' rounding, Σ|w|·|x − x̂|, on top.
            let quantisation: f64 = w
                .iter()
                .zip(x.iter().zip(&xq[r]))
                .map(|(&a, (&b, bq))| f64::from(a).abs() * (f64::from(b) - bq).abs())
                .sum();
            let tol = tol + quantisation + ROUNDING * size;
            assert!(
                (g - c).abs() <= tol,
                "{dtype:?} {m}x{n}x{k} ({r},{j}): {g} vs candle {c}"
            );
        }
    }
}

// An odd number of blocks (k = 96) takes the AVX2 kernel, an even one (k = 128) the
// AVX-512 kernel where the processor has it; m up to 2 × ROWS + 1 covers partial groups, and
// n, not a multiple of the 32 columns of a task, a partial task.
#[test]
fn q5_0_matches_the_dequantised_product() {
    for m in [1, 3, 4, 9, 17] {
        check(GgmlDType::Q5_0, m, 70, 96);
        check(GgmlDType::Q5_0, m, 70, 128);
    }
}

/// Matrices of whole 16-column tiles take the repacked kernel where the processor has
/// AVX-512 VNNI: every 32-value type, full and partial groups of eight rows, one tile and
/// several, and Qwen's width of 896.
#[test]
fn packed_kernels_match_the_dequantised_product() {
    for dtype in [GgmlDType::Q5_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        #[cfg(target_arch = "x86_64")]
        {
            let case = Case::new(dtype, 1, 48, 96);
            assert_eq!(case.fast.packed, x86::avx512_available(), "{dtype:?}");
        }
        for m in [1, 2, 8, 19, 40] {
            check(dtype, m, 16, 64);
            check(dtype, m, 48, 96);
        }
        check(dtype, 23, 32, 896);
    }
}

#[test]
fn q4_1_matches_the_dequantised_product() {
    for m in [1, 2, 5, 8, 17] {
        check(GgmlDType::Q4_1, m, 37, 96);
        check(GgmlDType::Q4_1, m, 37, 128);
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
fn q4k_matches_the_dequantised_product() {
    for m in [1, 3, 8, 9, 17] {
        check(GgmlDType::Q4K, m, 45, 256);
        check(GgmlDType::Q4K, m, 45, 768);
    }
}

#[test]
fn q6k_matches_the_dequantised_product() {
    for m in [1, 3, 8, 9, 17] {
        check(GgmlDType::Q6K, m, 45, 256);
        check(GgmlDType::Q6K, m, 45, 768);
    }
}

/// The dispatcher picks AVX-512 where it can, so the k-quants' AVX2 kernel is checked against
/// the portable one directly.
#[cfg(target_arch = "x86_64")]
#[test]
fn k_quant_avx2_kernel_matches_the_portable_one() {
    if !x86::available() {
        eprintln!("SKIPPED: no AVX2");
        return;
    }
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
        let case = Case::new(dtype, ROWS, 40, 512);
        let rows = Activations::quantize(&case.x, case.k, ActivationFormat::Super);
        let Activations::Super(super_rows) = &rows else {
            unreachable!()
        };
        let xq = dequantized(&rows);
        for j in 0..case.n {
            let mut simd = [0f32; ROWS];
            // SAFETY: AVX2 and FMA are present (checked); whole super-blocks, ROWS rows.
            unsafe { x86_k::dot_rows_avx2(case.kind, case.weight_row(j), super_rows, &mut simd) };
            let scalar = scalar_column(&case, &rows, j);
            let w = &case.w[j * case.k..(j + 1) * case.k];
            for r in 0..ROWS {
                let size: f64 = w
                    .iter()
                    .zip(&xq[r])
                    .map(|(&a, b)| f64::from(a).abs() * b.abs())
                    .sum();
                let diff = f64::from(simd[r] - scalar[r]).abs();
                assert!(
                    diff <= ROUNDING * size,
                    "{dtype:?} ({r},{j}): {} vs {}",
                    simd[r],
                    scalar[r]
                );
            }
        }
    }
}

#[test]
fn super_rows_round_to_nearest_and_sum_their_runs() {
    let mut x: Vec<f32> = (0..2 * SUPER_BLOCK)
        .map(|i| (i as f32 * 0.37).sin() * 2.5)
        .collect();
    x[..SUPER_BLOCK].fill(0.0);
    let r = quantize_row_super(&x);
    assert_eq!(r.scales[0], 0.0);
    assert!(r.values[..SUPER_BLOCK].iter().all(|&q| q == 0));
    let d = r.scales[1];
    let amax = x[SUPER_BLOCK..].iter().fold(0f32, |a, v| a.max(v.abs()));
    assert!((d.abs() * 127.0 - amax).abs() <= 1e-5 * amax);
    for (i, &v) in x.iter().enumerate().skip(SUPER_BLOCK) {
        let err = (v - f32::from(r.values[i]) * d).abs();
        assert!(
            err <= 0.5 * d.abs() * (1.0 + 1e-5),
            "value {i}: {v} → {}",
            r.values[i]
        );
    }
    for (run, &s) in r.values.chunks_exact(16).zip(&r.bsums) {
        assert_eq!(run.iter().map(|&q| i16::from(q)).sum::<i16>(), s);
    }
}

#[test]
fn mismatched_activations_are_refused() {
    let case = Case::new(GgmlDType::Q4K, 1, 4, 256);
    let blocks = Activations::quantize(&case.x, 256, ActivationFormat::Blocks);
    assert!(case.fast.forward_rows(&blocks).is_err());
    let wide = Activations::quantize(&[0.5; 512], 512, ActivationFormat::Super);
    assert!(case.fast.forward_rows(&wide).is_err());
}

#[test]
fn only_types_faster_than_candle_are_taken_by_default() {
    let w = Tensor::from_vec(vec![0.25f32; 4 * 256], (4, 256), &Device::Cpu).unwrap();
    for (dtype, taken) in [
        (GgmlDType::Q5_0, true),
        (GgmlDType::Q4_1, true),
        (GgmlDType::Q8_0, true),
        (GgmlDType::Q4K, false),
        (GgmlDType::Q6K, false),
        (GgmlDType::Q4_0, false),
    ] {
        let q = QTensor::quantize(&w, dtype).unwrap();
        assert_eq!(
            QuantMatrix::from_qtensor(&q).unwrap().is_some(),
            taken,
            "{dtype:?}"
        );
    }
}

/// Several matrices of different types and widths in one dispatch: each product exactly as
/// its own [`QuantMatrix::forward_rows`] computes it (same sums, same order).
#[test]
fn one_dispatch_for_several_matrices_equals_separate_products() {
    for m in [1, 3, 10] {
        let cases = [
            Case::new(GgmlDType::Q4_1, m, 96, 256),
            Case::new(GgmlDType::Q5_0, m, 33, 256),
            Case::new(GgmlDType::Q8_0, m, 64, 256),
        ];
        let rows = Activations::quantize(&cases[0].x, 256, ActivationFormat::Blocks);
        let mut outs: Vec<Vec<f32>> = cases.iter().map(|c| vec![f32::NAN; m * c.n]).collect();
        let mut jobs: Vec<(&QuantMatrix, &mut [f32])> = cases
            .iter()
            .zip(outs.iter_mut())
            .map(|(c, o)| (&c.fast, &mut o[..]))
            .collect();
        matmul_many(&rows, &mut jobs).unwrap();
        for (case, got) in cases.iter().zip(&outs) {
            let want = case.fast.forward_rows(&rows).unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got, &want, "{:?}, {m} rows", case.kind);
        }
    }
    // A mismatched output size is refused, not written past.
    let case = Case::new(GgmlDType::Q4_1, 2, 32, 256);
    let rows = Activations::quantize(&case.x, 256, ActivationFormat::Blocks);
    let mut short = vec![0f32; 63];
    assert!(matmul_many(&rows, &mut [(&case.fast, &mut short[..])]).is_err());
}
