//! Comparing two finished runs' reports: pass@k per shared variant, and every problem whose
//! results changed.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::report::{ProblemResult, Report, VariantReport};

/// Two reports side by side (`a` is the reference, differences are `b - a`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Title of report a.
    pub a: String,
    /// Title of report b.
    pub b: String,
    /// Each variant present in both, in a's order.
    pub variants: Vec<VariantComparison>,
    /// Variants only in a.
    pub only_in_a: Vec<String>,
    /// Variants only in b.
    pub only_in_b: Vec<String>,
}

/// One variant in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantComparison {
    /// The variant's name.
    pub name: String,
    /// Problems scored in a and in b.
    pub problems: (usize, usize),
    /// Samples scored in a and in b.
    pub samples: (usize, usize),
    /// pass@k in each run (every k either reports).
    pub pass_at_k: Vec<KComparison>,
    /// Problems whose results differ (or that only one run has), in a's order then b's.
    pub changes: Vec<ProblemChange>,
    /// Problems with identical results in both.
    pub unchanged: usize,
}

/// pass@k of one variant in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KComparison {
    /// k.
    pub k: usize,
    /// In a (`None`: not reported there).
    pub a: Option<f64>,
    /// In b.
    pub b: Option<f64>,
    /// `b - a`, where both have it.
    pub difference: Option<f64>,
}

/// One problem whose results changed between the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemChange {
    /// The problem's id.
    pub problem_id: String,
    /// Its difficulty label.
    pub difficulty: String,
    /// Passed and scored samples (c, n) in a; `None` when a has no result for it.
    pub a: Option<(usize, usize)>,
    /// The same in b.
    pub b: Option<(usize, usize)>,
    /// Sample indices whose outcome (pass/fail or status) differs, or that only one run has.
    pub samples_changed: Vec<usize>,
}

/// Compares two reports, down to each problem's samples.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    let in_b: HashMap<&str, &VariantReport> =
        b.variants.iter().map(|v| (v.name.as_str(), v)).collect();
    let in_a: BTreeSet<&str> = a.variants.iter().map(|v| v.name.as_str()).collect();
    Comparison {
        a: a.title.clone(),
        b: b.title.clone(),
        variants: a
            .variants
            .iter()
            .filter_map(|va| in_b.get(va.name.as_str()).map(|vb| variant(va, vb)))
            .collect(),
        only_in_a: a
            .variants
            .iter()
            .filter(|v| !in_b.contains_key(v.name.as_str()))
            .map(|v| v.name.clone())
            .collect(),
        only_in_b: b
            .variants
            .iter()
            .filter(|v| !in_a.contains(v.name.as_str()))
            .map(|v| v.name.clone())
            .collect(),
    }
}

fn variant(a: &VariantReport, b: &VariantReport) -> VariantComparison {
    let ks: BTreeSet<usize> = a
        .overall
        .pass_at_k
        .keys()
        .chain(b.overall.pass_at_k.keys())
        .copied()
        .collect();
    let pass_at_k = ks
        .into_iter()
        .map(|k| {
            let (x, y) = (
                a.overall.pass_at_k.get(&k).copied(),
                b.overall.pass_at_k.get(&k).copied(),
            );
            KComparison {
                k,
                a: x,
                b: y,
                difference: x.zip(y).map(|(x, y)| y - x),
            }
        })
        .collect();
    let b_by_id: HashMap<&str, &ProblemResult> = b
        .problems
        .iter()
        .map(|p| (p.problem_id.as_str(), p))
        .collect();
    let a_ids: BTreeSet<&str> = a.problems.iter().map(|p| p.problem_id.as_str()).collect();
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for pa in &a.problems {
        let pb = b_by_id.get(pa.problem_id.as_str()).copied();
        match problem(Some(pa), pb) {
            Some(c) => changes.push(c),
            None => unchanged += 1,
        }
    }
    for pb in b
        .problems
        .iter()
        .filter(|p| !a_ids.contains(p.problem_id.as_str()))
    {
        changes.extend(problem(None, Some(pb)));
    }
    VariantComparison {
        name: a.name.clone(),
        problems: (a.overall.problems, b.overall.problems),
        samples: (a.overall.samples, b.overall.samples),
        pass_at_k,
        changes,
        unchanged,
    }
}

/// The change of one problem, or `None` when every sample has the same outcome.
fn problem(a: Option<&ProblemResult>, b: Option<&ProblemResult>) -> Option<ProblemChange> {
    let outcomes = |p: Option<&ProblemResult>| -> HashMap<usize, (bool, String)> {
        p.map(|p| {
            p.samples
                .iter()
                .map(|s| (s.sample_idx, (s.passed, format!("{:?}", s.status))))
                .collect()
        })
        .unwrap_or_default()
    };
    let (oa, ob) = (outcomes(a), outcomes(b));
    let idx: BTreeSet<usize> = oa.keys().chain(ob.keys()).copied().collect();
    let samples_changed: Vec<usize> = idx.into_iter().filter(|i| oa.get(i) != ob.get(i)).collect();
    let cn = |p: Option<&ProblemResult>| p.map(|p| (p.c, p.n));
    if samples_changed.is_empty() && a.is_some() && b.is_some() {
        return None;
    }
    let any = a.or(b).expect("one side exists");
    Some(ProblemChange {
        problem_id: any.problem_id.clone(),
        difficulty: any.difficulty.clone(),
        a: cn(a),
        b: cn(b),
        samples_changed,
    })
}

fn opt_pct(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |x| format!("{:.2}%", x * 100.0))
}

fn opt_cn(x: Option<(usize, usize)>) -> String {
    x.map_or("–".to_owned(), |(c, n)| format!("{c}/{n}"))
}

/// The comparison as Markdown: pass@k per variant, then every changed problem.
pub fn render_comparison_markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# codeplan report comparison\n");
    let _ = writeln!(s, "- **a:** {}\n- **b:** {}\n", c.a, c.b);
    if !c.only_in_a.is_empty() {
        let _ = writeln!(s, "Variants only in a: {}  ", c.only_in_a.join(", "));
    }
    if !c.only_in_b.is_empty() {
        let _ = writeln!(s, "Variants only in b: {}  ", c.only_in_b.join(", "));
    }
    if c.variants.is_empty() {
        let _ = writeln!(s, "\nNo variant is in both reports.");
        return s;
    }
    let _ = writeln!(s, "\n## pass@k\n");
    let _ = writeln!(
        s,
        "| variant | problems a / b | samples a / b | k | a | b | b − a |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for v in &c.variants {
        for k in &v.pass_at_k {
            let _ = writeln!(
                s,
                "| {} | {} / {} | {} / {} | {} | {} | {} | {} |",
                v.name,
                v.problems.0,
                v.problems.1,
                v.samples.0,
                v.samples.1,
                k.k,
                opt_pct(k.a),
                opt_pct(k.b),
                k.difference
                    .map_or("–".to_owned(), |d| format!("{:+.2} pp", d * 100.0))
            );
        }
    }
    let _ = writeln!(s, "\n## Problems whose results changed\n");
    for v in &c.variants {
        if v.changes.is_empty() {
            let _ = writeln!(
                s,
                "**{}**: no change ({} problems identical).\n",
                v.name, v.unchanged
            );
            continue;
        }
        let _ = writeln!(
            s,
            "**{}**: {} problems changed, {} identical.\n",
            v.name,
            v.changes.len(),
            v.unchanged
        );
        let _ = writeln!(
            s,
            "| problem | difficulty | passed a | passed b | samples changed |\n|---|---|---:|---:|---|"
        );
        for ch in &v.changes {
            let idx: Vec<String> = ch.samples_changed.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                ch.problem_id,
                ch.difficulty,
                opt_cn(ch.a),
                opt_cn(ch.b),
                idx.join(", ")
            );
        }
        s.push('\n');
    }
    s
}
