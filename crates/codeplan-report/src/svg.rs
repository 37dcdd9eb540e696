//! The training loss chart as inline SVG, drawn by hand: one line per variant, axes with round
//! ticks, a legend. Written by hand rather than with plotters because it must be a string inside
//! report.html, and plain SVG text needs no font rendering on the machine that writes it.

use std::fmt::Write as _;

use crate::html::escape;

/// Line colours (colour-blind-safe Okabe–Ito palette), reused in order.
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 44.0;

/// Round tick values covering `0..=max`: steps of 1, 2 or 5 times a power of ten, at most ~6 ticks.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| max / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= max * (1.0 + 1e-9))
        .collect()
}

/// Formats a tick without trailing noise (`0.5`, `1200`).
fn label(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The chart of `curves` (name, (step, loss) points); `None` when no curve has a point.
pub(crate) fn loss_chart(curves: &[(&str, &[(u64, f64)])]) -> Option<String> {
    let curves: Vec<&(&str, &[(u64, f64)])> =
        curves.iter().filter(|(_, p)| !p.is_empty()).collect();
    if curves.is_empty() {
        return None;
    }
    let max_step = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_loss = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |s: f64| LEFT + s / max_step * pw;
    let y = |l: f64| TOP + ph - l / max_loss * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="training loss by step" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#888"/>"##
    );
    for t in ticks(max_loss) {
        let ty = y(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            ty + 4.0,
            label(t)
        );
    }
    for t in ticks(max_step) {
        let tx = x(t);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 16.0,
            label(t)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">step</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">train/loss</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 6.0,
        TOP + ph / 2.0
    );
    for (i, (name, points)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = points
            .iter()
            .map(|&(st, l)| format!("{:.1},{:.1}", x(st as f64), y(l)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let lx = LEFT + pw + 12.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(name)
        );
    }
    s.push_str("</svg>");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(2.6), vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(ticks(0.0), vec![0.0]);
        assert_eq!(label(0.5), "0.5");
        assert_eq!(label(1200.0), "1200");
        assert_eq!(label(0.0), "0");
    }

    #[test]
    fn chart_has_one_line_per_curve() {
        let a = [(0, 2.0), (10, 1.0)];
        let b = [(0, 2.5), (5, 1.5)];
        let svg = loss_chart(&[("base<1>", &a[..]), ("plan", &b[..]), ("none", &[][..])]).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("base&lt;1&gt;"));
        assert!(loss_chart(&[("none", &[][..])]).is_none());
    }
}
