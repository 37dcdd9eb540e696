//! The report as Markdown (`report.md`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use codeplan_data::only_unrated;
use serde_json::Value;

use crate::bootstrap::{pct, pp};
use crate::report::{outcome, Difference, GroupScores, Report};

/// A fraction as a percentage with two decimals.
pub(crate) fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Text safe inside a Markdown table cell.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Every k reported by some variant, ascending.
pub(crate) fn reported_ks(report: &Report) -> Vec<usize> {
    let ks: BTreeSet<usize> = report
        .variants
        .iter()
        .flat_map(|v| v.overall.pass_at_k.keys().copied())
        .collect();
    ks.into_iter().collect()
}

/// The groups of a variant to show: each difficulty with problems, then `overall`.
pub(crate) fn groups<'a>(
    report: &'a Report,
    by: &'a std::collections::BTreeMap<String, GroupScores>,
    overall: &'a GroupScores,
) -> Vec<(&'a str, &'a GroupScores)> {
    let mut rows: Vec<(&str, &GroupScores)> = report
        .difficulties
        .iter()
        .filter_map(|d| by.get(d).map(|g| (d.as_str(), g)))
        .collect();
    if only_unrated(rows.iter().map(|r| r.0)) {
        rows.clear();
    }
    rows.push(("overall", overall));
    rows
}

/// A fence longer than any run of backticks in `text`, so code cannot close it early.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The CI of a difference, formatted.
pub(crate) fn ci_text(d: &Difference) -> (String, String, String) {
    let abs = format!("{} to {}", pp(d.absolute_ci[0]), pp(d.absolute_ci[1]));
    let rel = d.relative.map_or("undefined".to_owned(), pct);
    let rel_ci = d.relative_ci.map_or("–".to_owned(), |r| {
        format!("{} to {}", pct(r[0]), pct(r[1]))
    });
    (abs, rel, rel_ci)
}

/// Renders the report as Markdown.
pub fn render_markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", report.title);
    let ks = reported_ks(report);
    let level = format!("{}%", (report.bootstrap.confidence * 100.0).round());

    let _ = writeln!(s, "## Variants\n\n| variant | role | description | problems | samples | internal errors |\n|---|---|---|---:|---:|---:|");
    for v in &report.variants {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            if v.baseline { "baseline" } else { "variant" },
            cell(&v.description),
            v.overall.problems,
            v.overall.samples,
            v.internal_errors
        );
    }
    for v in report
        .variants
        .iter()
        .filter(|v| !v.unscored_problems.is_empty())
    {
        let _ = writeln!(
            s,
            "\n{}: {} evaluation problems have no scored sample and are left out: {}.",
            v.name,
            v.unscored_problems.len(),
            v.unscored_problems.join(", ")
        );
    }

    let _ = writeln!(s, "\n## pass@k\n\nUnbiased estimator (Chen et al. 2021), mean over problems; samples the engine failed on are excluded.\n");
    let _ = write!(s, "| variant | difficulty | problems | samples |");
    for k in &ks {
        let _ = write!(s, " pass@{k} |");
    }
    let _ = write!(s, "\n|---|---|---:|---:|");
    for _ in &ks {
        s.push_str("---:|");
    }
    s.push('\n');
    for v in &report.variants {
        for (d, g) in groups(report, &v.by_difficulty, &v.overall) {
            let _ = write!(
                s,
                "| {} | {d} | {} | {} |",
                cell(&v.name),
                g.problems,
                g.samples
            );
            for k in &ks {
                let _ = write!(
                    s,
                    " {} |",
                    g.pass_at_k.get(k).map_or("–".into(), |x| percent(*x))
                );
            }
            s.push('\n');
        }
    }

    if !report.improvements.is_empty() {
        let _ = writeln!(
            s,
            "\n## pass@1 against the baseline\n\nPaired bootstrap over problems ({} resamples, seed {}, {level} percentile intervals); per-problem pass@1 = c/n, over the problems both variants scored.\n",
            report.bootstrap.resamples, report.bootstrap.seed
        );
        let _ = writeln!(s, "| variant | difficulty | problems | baseline | variant | difference | {level} CI | relative | {level} CI |\n|---|---|---:|---:|---:|---:|---|---:|---|");
        for imp in &report.improvements {
            let rows = report
                .difficulties
                .iter()
                .filter_map(|d| imp.by_difficulty.get(d).map(|x| (d.as_str(), x)))
                .chain(imp.overall.as_ref().map(|x| ("overall", x)));
            for (d, x) in rows {
                let (abs, rel, rel_ci) = ci_text(x);
                let _ = writeln!(
                    s,
                    "| {} | {d} | {} | {} | {} | {} | {abs} | {rel} | {rel_ci} |",
                    cell(&imp.variant),
                    x.problems,
                    percent(x.baseline),
                    percent(x.variant),
                    pp(x.absolute)
                );
            }
        }
        s.push('\n');
        for imp in &report.improvements {
            match &imp.overall {
                Some(x) => {
                    let _ = writeln!(s, "- **{}**: {}.", imp.variant, x.verdict);
                    if let Some(note) = &x.relative_note {
                        let _ = writeln!(s, "  Relative change: {note}.");
                    }
                }
                None => {
                    let _ = writeln!(s, "- **{}**: no problem scored by both it and the baseline: nothing to compare.", imp.variant);
                }
            }
        }
    }

    plans_section(&mut s, report);
    loss_section(&mut s, report);
    examples_section(&mut s, report);
    contamination_section(&mut s, report);

    let _ = writeln!(s, "\n## Manifest\n");
    if report.manifest.is_null() {
        let _ = writeln!(s, "(none)");
    } else {
        manifest_list(&mut s, &report.manifest, 0);
    }
    let _ = writeln!(s, "\n## Files\n");
    for v in &report.variants {
        let f = &v.files;
        let _ = writeln!(
            s,
            "- {}: samples `{}`, verdicts `{}`{}{}",
            v.name,
            f.samples,
            f.verdicts,
            f.train_metrics
                .as_ref()
                .map_or(String::new(), |p| format!(", metrics `{p}`")),
            f.plans_summary
                .as_ref()
                .map_or(String::new(), |p| format!(", plans summary `{p}`"))
        );
    }
    s
}

fn plans_section(s: &mut String, report: &Report) {
    let with: Vec<_> = report
        .variants
        .iter()
        .filter_map(|v| v.plans.as_ref().map(|p| (v, p)))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Plans\n\n| variant | reasoning | teacher | problems with plans | plans kept | per problem (mean, min–max) | validated | validation pass rate |\n|---|---|---|---:|---:|---|---:|---:|");
    let opt = |x: Option<usize>| x.map_or("–".to_owned(), |x| x.to_string());
    for (v, p) in with {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            cell(&v.name),
            p.reasoning.as_deref().unwrap_or("–"),
            cell(p.teacher.as_deref().unwrap_or("–")),
            opt(p.problems_with_plans),
            opt(p.problems),
            opt(p.plans_kept),
            p.plans_per_problem
                .map_or("–".to_owned(), |(m, lo, hi)| format!(
                    "{m:.2} ({lo}–{hi})"
                )),
            opt(p.plans_validated),
            p.validation_pass_rate.map_or("–".to_owned(), |r| format!(
                "{} ({}/{})",
                percent(r),
                p.passed,
                p.judged
            )),
        );
    }
}

fn loss_section(s: &mut String, report: &Report) {
    let with: Vec<_> = report
        .variants
        .iter()
        .filter_map(|v| v.loss.as_ref().filter(|l| !l.is_empty()).map(|l| (v, l)))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Training loss\n\nThe curves are drawn in report.html.\n\n| variant | steps | first | last | lowest |\n|---|---:|---:|---:|---:|");
    for (v, l) in with {
        let (first, last) = (l[0], l[l.len() - 1]);
        let min = l.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {:.4} | {:.4} |",
            cell(&v.name),
            last.0,
            first.1,
            last.1,
            min
        );
    }
}

fn examples_section(s: &mut String, report: &Report) {
    if report.examples.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Examples\n");
    for e in &report.examples {
        let _ = writeln!(
            s,
            "### Problem {} ({}): {} vs {}\n\nChosen because {}.\n",
            e.problem_id, e.difficulty, e.variant.name, e.baseline.name, e.why
        );
        let f = fence(&e.question);
        let _ = writeln!(s, "{f}text\n{}\n{f}\n", e.question);
        for side in [&e.baseline, &e.variant] {
            let _ = writeln!(
                s,
                "**{}**, sample {}: {}; {}/{} samples passed\n",
                side.name,
                side.sample_idx,
                outcome(side.passed, side.status),
                side.c,
                side.n
            );
            let f = fence(&side.code);
            let _ = writeln!(s, "{f}python\n{}\n{f}\n", side.code.trim_end());
        }
    }
}

fn contamination_section(s: &mut String, report: &Report) {
    let c = &report.contamination;
    let _ = writeln!(
        s,
        "\n## Contamination check\n\nWord {}-grams (lowercase, split on non-alphanumeric characters) of each evaluation question, looked up in {} training questions and {} plans; a problem is flagged when at least {} of its {}-grams appear in one of them, or when it duplicates a training question exactly.\n\n**{} of {} evaluation problems flagged** ({} exact duplicates).\n",
        c.n, c.train_questions, c.plans, percent(c.threshold), c.n, c.flagged, c.problems.len(), c.exact_duplicates
    );
    let mut top: Vec<_> = c
        .problems
        .iter()
        .filter(|p| p.flagged || p.max_overlap > 0.0)
        .collect();
    top.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.max_overlap.total_cmp(&a.max_overlap))
    });
    let shown = top.iter().take(c.flagged.max(10));
    if top.is_empty() {
        let _ = writeln!(
            s,
            "No evaluation question shares a {}-gram with the training data.",
            c.n
        );
        return;
    }
    let _ = writeln!(
        s,
        "| problem | flagged | max overlap | where | exact duplicate of |\n|---|---|---:|---|---|"
    );
    for p in shown {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            p.problem_id,
            if p.flagged { "**yes**" } else { "no" },
            percent(p.max_overlap),
            cell(p.source.as_deref().unwrap_or("–")),
            p.exact_duplicate_of.as_deref().unwrap_or("–")
        );
    }
    let _ = writeln!(
        s,
        "\nEvery problem's overlap is in report.json and report.html."
    );
}

/// A JSON value as a nested Markdown list.
fn manifest_list(s: &mut String, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(_) | Value::Array(_) if !is_flat(x) => {
                        let _ = writeln!(s, "{pad}- **{k}**:");
                        manifest_list(s, x, depth + 1);
                    }
                    _ => {
                        let _ = writeln!(s, "{pad}- **{k}**: {}", scalar(x));
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                if is_flat(x) {
                    let _ = writeln!(s, "{pad}- {}", scalar(x));
                } else if let Some(o) = x.as_object().filter(|o| o.values().all(is_flat)) {
                    // A record such as one stage's wall time reads best on one line.
                    let fields: Vec<String> = o
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", scalar(v)))
                        .collect();
                    let _ = writeln!(s, "{pad}- {}", fields.join(", "));
                } else {
                    let _ = writeln!(s, "{pad}-");
                    manifest_list(s, x, depth + 1);
                }
            }
        }
        other => {
            let _ = writeln!(s, "{pad}- {}", scalar(other));
        }
    }
}

/// Whether a value fits on one line: a scalar, or an array of scalars.
pub(crate) fn is_flat(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.iter().all(|x| !x.is_object() && !x.is_array()),
        _ => true,
    }
}

/// A one-line value: strings unquoted, arrays comma-separated.
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".to_owned(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(_) => "{}".to_owned(),
        other => other.to_string(),
    }
}
