//! The paired bootstrap over problems for a variant's pass@1 against the baseline's.
//!
//! Each resample draws problem indices with replacement, the same draw for both variants (the
//! pairing is what makes per-problem difficulty cancel out); a problem's pass@1 is c/n. The
//! interval is the percentile interval of the resampled statistic. Seeded ChaCha8, so the same
//! settings give the same interval on every machine.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::report::Difference;
use crate::BootstrapSettings;

/// Below this many problems no verdict claims a difference: the percentile bootstrap of a mean
/// is too narrow on a handful of points (with one problem its interval has zero width).
pub const MIN_PROBLEMS: usize = 20;

/// A uniform index below `n` (rejection sampling, so no index is favoured).
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    // The largest multiple of n that fits, minus one: values above it would bias the modulo.
    let limit = u64::MAX - ((u64::MAX % n) + 1) % n;
    loop {
        let x = rng.next_u64();
        if x <= limit {
            return (x % n) as usize;
        }
    }
}

/// The `q` quantile of sorted `v` by linear interpolation (R's type 7, numpy's default).
fn quantile(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Formats a fraction as signed percentage points.
pub(crate) fn pp(x: f64) -> String {
    format!("{:+.2} pp", x * 100.0)
}

/// Formats a ratio minus one as a signed percentage.
pub(crate) fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// The paired difference of per-problem pass@1 (`variant[i]` against `baseline[i]`, same
/// problem `i`); `None` for no problems.
pub(crate) fn paired(
    name: &str,
    baseline: &[f64],
    variant: &[f64],
    settings: &BootstrapSettings,
) -> Option<Difference> {
    assert_eq!(baseline.len(), variant.len(), "paired samples");
    let n = baseline.len();
    if n == 0 {
        return None;
    }
    let (b, v) = (mean(baseline), mean(variant));
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut abs = Vec::with_capacity(settings.resamples);
    let mut rel = Vec::with_capacity(settings.resamples);
    let mut zero = 0;
    for _ in 0..settings.resamples {
        let (mut sb, mut sv) = (0.0, 0.0);
        for _ in 0..n {
            let i = below(&mut rng, n);
            sb += baseline[i];
            sv += variant[i];
        }
        let (mb, mv) = (sb / n as f64, sv / n as f64);
        abs.push(mv - mb);
        if mb > 0.0 {
            rel.push(mv / mb - 1.0);
        } else {
            zero += 1;
        }
    }
    let alpha = 1.0 - settings.confidence;
    let interval = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        [quantile(&xs, alpha / 2.0), quantile(&xs, 1.0 - alpha / 2.0)]
    };
    let absolute_ci = interval(abs);
    let (relative, relative_ci, relative_note) = if b <= 0.0 {
        (
            None,
            None,
            Some("the baseline's pass@1 is 0, so a relative change is undefined; only the absolute difference is reported".to_owned()),
        )
    } else if zero > 0 {
        (
            Some(v / b - 1.0),
            None,
            Some(format!(
                "the baseline's pass@1 was 0 in {zero} of {} resamples, so the relative change has no confidence interval; rely on the absolute difference",
                settings.resamples
            )),
        )
    } else {
        (Some(v / b - 1.0), Some(interval(rel)), None)
    };
    let level = format!("{}%", (settings.confidence * 100.0).round());
    let ci = format!(
        "{level} CI {} to {}",
        pp(absolute_ci[0]),
        pp(absolute_ci[1])
    );
    let over = if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{n} problems")
    };
    let verdict = if n < MIN_PROBLEMS {
        format!(
            "only {over}: too few for the bootstrap interval to be trusted (pass@1 {}, {ci}); no conclusion drawn",
            pp(v - b)
        )
    } else if absolute_ci[0] > 0.0 {
        let times = match relative_ci {
            Some(r) => format!(
                "; relative {} ({level} CI {} to {})",
                pct(v / b - 1.0),
                pct(r[0]),
                pct(r[1])
            ),
            None => String::new(),
        };
        format!(
            "{name} solves more than the baseline: pass@1 {} ({ci}){times}, over {over}",
            pp(v - b)
        )
    } else if absolute_ci[1] < 0.0 {
        format!(
            "{name} solves fewer than the baseline: pass@1 {} ({ci}), over {over}",
            pp(v - b)
        )
    } else {
        format!(
            "the {level} CI of the difference ({} to {}) includes 0: no evidence of a difference at this scale ({over})",
            pp(absolute_ci[0]),
            pp(absolute_ci[1])
        )
    };
    Some(Difference {
        problems: n,
        baseline: b,
        variant: v,
        absolute: v - b,
        absolute_ci,
        relative,
        relative_ci,
        relative_note,
        zero_baseline_resamples: zero,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> BootstrapSettings {
        BootstrapSettings {
            resamples: 2000,
            seed,
            confidence: 0.95,
        }
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 0.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert!((quantile(&v, 0.125) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn indices_are_in_range_and_cover() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[below(&mut rng, 7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn identical_variants_give_a_zero_interval() {
        let x = [0.5, 0.0, 1.0, 0.25].repeat(5);
        let d = paired("v", &x, &x, &settings(0)).unwrap();
        assert_eq!(d.absolute_ci, [0.0, 0.0]);
        assert!(d.verdict.contains("includes 0"), "{}", d.verdict);
        assert_eq!(d.relative, Some(0.0));
        assert!(paired("v", &[], &[], &settings(0)).is_none());
        // One problem gives a zero-width interval: no claim, whatever it says.
        let d = paired("v", &[0.0], &[1.0], &settings(0)).unwrap();
        assert_eq!(d.absolute_ci, [1.0, 1.0]);
        assert!(
            d.verdict.starts_with("only 1 problem: too few"),
            "{}",
            d.verdict
        );
    }
}
