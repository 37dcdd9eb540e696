//! The report as one self-contained HTML page (`report.html`): inline CSS, inline SVG, no
//! script and no external asset, so it opens anywhere, offline, as one file.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bootstrap::pp;
use crate::markdown::{ci_text, groups, is_flat, percent, reported_ks, scalar};
use crate::report::{outcome, Report};
use crate::svg::loss_chart;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.ex{display:grid;grid-template-columns:1fr 1fr;gap:1em}.ex pre{max-height:28em}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;font-size:13px}
.pass{color:#05702d;font-weight:600}.fail{color:#a4141b;font-weight:600}.note{color:#555}
.verdict{background:#f4f8ff;border-left:4px solid #0072B2;padding:.4em .8em;margin:.5em 0}
dl{margin:.2em 0 .2em 1em}dt{font-weight:600}dd{margin:0 0 .3em 1em}";

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn row(s: &mut String, cells: &[(bool, String)]) {
    s.push_str("<tr>");
    for (num, c) in cells {
        let _ = write!(s, "{}{c}</td>", if *num { "<td class=n>" } else { "<td>" });
    }
    s.push_str("</tr>\n");
}

fn head(s: &mut String, cells: &[&str]) {
    s.push_str("<table><tr>");
    for c in cells {
        let _ = write!(s, "<th>{}</th>", escape(c));
    }
    s.push_str("</tr>\n");
}

fn t(x: impl ToString) -> (bool, String) {
    (false, escape(&x.to_string()))
}

fn n(x: impl ToString) -> (bool, String) {
    (true, escape(&x.to_string()))
}

/// Renders the report as a self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&report.title),
        escape(&report.title)
    );
    let ks = reported_ks(report);
    let level = format!("{}%", (report.bootstrap.confidence * 100.0).round());

    s.push_str("<h2>Variants</h2>\n");
    head(
        &mut s,
        &[
            "variant",
            "role",
            "description",
            "problems",
            "samples",
            "internal errors",
        ],
    );
    for v in &report.variants {
        let role = if v.baseline { "baseline" } else { "variant" };
        row(
            &mut s,
            &[
                t(&v.name),
                t(role),
                t(&v.description),
                n(v.overall.problems),
                n(v.overall.samples),
                n(v.internal_errors),
            ],
        );
    }
    s.push_str("</table>\n");
    for v in report
        .variants
        .iter()
        .filter(|v| !v.unscored_problems.is_empty())
    {
        let _ = writeln!(
            s,
            "<p class=note>{}: {} evaluation problems have no scored sample and are left out: {}.</p>",
            escape(&v.name),
            v.unscored_problems.len(),
            escape(&v.unscored_problems.join(", "))
        );
    }

    s.push_str("<h2>pass@k</h2>\n<p class=note>Unbiased estimator (Chen et al. 2021), mean over problems; samples the engine failed on are excluded.</p>\n");
    let mut cols: Vec<String> = ["variant", "difficulty", "problems", "samples"]
        .map(String::from)
        .to_vec();
    cols.extend(ks.iter().map(|k| format!("pass@{k}")));
    head(&mut s, &cols.iter().map(String::as_str).collect::<Vec<_>>());
    for v in &report.variants {
        for (d, g) in groups(report, &v.by_difficulty, &v.overall) {
            let mut cells = vec![t(&v.name), t(d), n(g.problems), n(g.samples)];
            cells.extend(
                ks.iter()
                    .map(|k| n(g.pass_at_k.get(k).map_or("–".into(), |x| percent(*x)))),
            );
            row(&mut s, &cells);
        }
    }
    s.push_str("</table>\n");

    if !report.improvements.is_empty() {
        let _ = writeln!(
            s,
            "<h2>pass@1 against the baseline</h2>\n<p class=note>Paired bootstrap over problems ({} resamples, seed {}, {level} percentile intervals); per-problem pass@1 = c/n, over the problems both variants scored.</p>",
            report.bootstrap.resamples, report.bootstrap.seed
        );
        for imp in &report.improvements {
            match &imp.overall {
                Some(x) => {
                    let _ = write!(
                        s,
                        "<p class=verdict><b>{}</b>: {}.",
                        escape(&imp.variant),
                        escape(&x.verdict)
                    );
                    if let Some(note) = &x.relative_note {
                        let _ = write!(s, "<br>Relative change: {}.", escape(note));
                    }
                    s.push_str("</p>\n");
                }
                None => {
                    let _ = writeln!(s, "<p class=verdict><b>{}</b>: no problem scored by both it and the baseline: nothing to compare.</p>", escape(&imp.variant));
                }
            }
        }
        let ci = format!("{level} CI");
        head(
            &mut s,
            &[
                "variant",
                "difficulty",
                "problems",
                "baseline",
                "variant",
                "difference",
                &ci,
                "relative",
                &ci,
            ],
        );
        for imp in &report.improvements {
            let rows = report
                .difficulties
                .iter()
                .filter_map(|d| imp.by_difficulty.get(d).map(|x| (d.as_str(), x)))
                .chain(imp.overall.as_ref().map(|x| ("overall", x)));
            for (d, x) in rows {
                let (abs, rel, rel_ci) = ci_text(x);
                row(
                    &mut s,
                    &[
                        t(&imp.variant),
                        t(d),
                        n(x.problems),
                        n(percent(x.baseline)),
                        n(percent(x.variant)),
                        n(pp(x.absolute)),
                        t(abs),
                        n(rel),
                        t(rel_ci),
                    ],
                );
            }
        }
        s.push_str("</table>\n");
    }

    plans(&mut s, report);
    loss(&mut s, report);
    examples(&mut s, report);
    contamination(&mut s, report);

    s.push_str("<h2>Manifest</h2>\n");
    if report.manifest.is_null() {
        s.push_str("<p>(none)</p>\n");
    } else {
        manifest(&mut s, &report.manifest);
    }
    s.push_str("<h2>Files</h2>\n");
    head(
        &mut s,
        &[
            "variant",
            "samples",
            "verdicts",
            "train metrics",
            "plans summary",
        ],
    );
    for v in &report.variants {
        let f = &v.files;
        let opt = |x: &Option<String>| t(x.as_deref().unwrap_or("–"));
        row(
            &mut s,
            &[
                t(&v.name),
                t(&f.samples),
                t(&f.verdicts),
                opt(&f.train_metrics),
                opt(&f.plans_summary),
            ],
        );
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

fn plans(s: &mut String, report: &Report) {
    let with: Vec<_> = report
        .variants
        .iter()
        .filter_map(|v| v.plans.as_ref().map(|p| (v, p)))
        .collect();
    if with.is_empty() {
        return;
    }
    s.push_str("<h2>Plans</h2>\n");
    head(
        s,
        &[
            "variant",
            "reasoning",
            "teacher",
            "problems with plans",
            "plans kept",
            "per problem (mean, min–max)",
            "validated",
            "validation pass rate",
        ],
    );
    let opt = |x: Option<usize>| x.map_or("–".to_owned(), |x| x.to_string());
    for (v, p) in with {
        row(
            s,
            &[
                t(&v.name),
                t(p.reasoning.as_deref().unwrap_or("–")),
                t(p.teacher.as_deref().unwrap_or("–")),
                n(format!(
                    "{} / {}",
                    opt(p.problems_with_plans),
                    opt(p.problems)
                )),
                n(opt(p.plans_kept)),
                n(p.plans_per_problem.map_or("–".to_owned(), |(m, lo, hi)| {
                    format!("{m:.2} ({lo}–{hi})")
                })),
                n(opt(p.plans_validated)),
                n(p.validation_pass_rate.map_or("–".to_owned(), |r| {
                    format!("{} ({}/{})", percent(r), p.passed, p.judged)
                })),
            ],
        );
    }
    s.push_str("</table>\n");
}

fn loss(s: &mut String, report: &Report) {
    let curves: Vec<(&str, &[(u64, f64)])> = report
        .variants
        .iter()
        .filter_map(|v| v.loss.as_deref().map(|l| (v.name.as_str(), l)))
        .collect();
    if let Some(svg) = loss_chart(&curves) {
        s.push_str("<h2>Training loss</h2>\n");
        s.push_str(&svg);
        s.push('\n');
    }
}

fn examples(s: &mut String, report: &Report) {
    if report.examples.is_empty() {
        return;
    }
    s.push_str("<h2>Examples</h2>\n");
    for e in &report.examples {
        let _ = writeln!(
            s,
            "<h3>Problem {} ({}): {} vs {}</h3>\n<p class=note>Chosen because {}.</p>\n<pre>{}</pre>\n<div class=ex>",
            escape(&e.problem_id),
            escape(&e.difficulty),
            escape(&e.variant.name),
            escape(&e.baseline.name),
            escape(&e.why),
            escape(&e.question)
        );
        for side in [&e.baseline, &e.variant] {
            let class = if side.passed { "pass" } else { "fail" };
            let _ = writeln!(
                s,
                "<div><b>{}</b>, sample {}: <span class={class}>{}</span>; {}/{} samples passed<pre><code>{}</code></pre></div>",
                escape(&side.name),
                side.sample_idx,
                escape(&outcome(side.passed, side.status)),
                side.c,
                side.n,
                escape(side.code.trim_end())
            );
        }
        s.push_str("</div>\n");
    }
}

fn contamination(s: &mut String, report: &Report) {
    let c = &report.contamination;
    let _ = writeln!(
        s,
        "<h2>Contamination check</h2>\n<p class=note>Word {}-grams (lowercase, split on non-alphanumeric characters) of each evaluation question, looked up in {} training questions and {} plans; a problem is flagged when at least {} of its {}-grams appear in one of them, or when it duplicates a training question exactly.</p>\n<p><b>{} of {} evaluation problems flagged</b> ({} exact duplicates).</p>",
        c.n, c.train_questions, c.plans, percent(c.threshold), c.n, c.flagged, c.problems.len(), c.exact_duplicates
    );
    let mut all: Vec<_> = c.problems.iter().collect();
    all.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.max_overlap.total_cmp(&a.max_overlap))
    });
    let _ = writeln!(
        s,
        "<details{}><summary>every evaluation problem ({})</summary>",
        if c.flagged > 0 { " open" } else { "" },
        all.len()
    );
    head(
        s,
        &[
            "problem",
            "flagged",
            &format!("{}-grams", c.n),
            "max overlap",
            "where",
            "exact duplicate of",
        ],
    );
    for p in all {
        row(
            s,
            &[
                t(&p.problem_id),
                (
                    false,
                    if p.flagged {
                        "<b class=fail>yes</b>".to_owned()
                    } else {
                        "no".to_owned()
                    },
                ),
                n(p.ngrams),
                n(percent(p.max_overlap)),
                t(p.source.as_deref().unwrap_or("–")),
                t(p.exact_duplicate_of.as_deref().unwrap_or("–")),
            ],
        );
    }
    s.push_str("</table></details>\n");
}

/// A JSON value as nested definition lists (objects) and tables (arrays of flat objects).
fn manifest(s: &mut String, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            s.push_str("<dl>");
            for (k, x) in m {
                let _ = write!(s, "<dt>{}</dt><dd>", escape(k));
                manifest(s, x);
                s.push_str("</dd>");
            }
            s.push_str("</dl>\n");
        }
        Value::Array(a) if !is_flat(v) => {
            // An array of objects with scalar fields (e.g. wall time per stage) reads best as a table.
            let objects: Option<Vec<&serde_json::Map<String, Value>>> = a
                .iter()
                .map(|x| x.as_object().filter(|o| o.values().all(is_flat)))
                .collect();
            match objects {
                Some(rows) => {
                    let mut keys: Vec<&String> = Vec::new();
                    for r in &rows {
                        for k in r.keys() {
                            if !keys.contains(&k) {
                                keys.push(k);
                            }
                        }
                    }
                    head(s, &keys.iter().map(|k| k.as_str()).collect::<Vec<_>>());
                    for r in rows {
                        let cells: Vec<(bool, String)> = keys
                            .iter()
                            .map(|k| t(r.get(*k).map_or("–".to_owned(), scalar)))
                            .collect();
                        row(s, &cells);
                    }
                    s.push_str("</table>\n");
                }
                None => {
                    s.push_str("<ol>");
                    for x in a {
                        s.push_str("<li>");
                        manifest(s, x);
                        s.push_str("</li>");
                    }
                    s.push_str("</ol>\n");
                }
            }
        }
        other => s.push_str(&escape(&scalar(other))),
    }
}
