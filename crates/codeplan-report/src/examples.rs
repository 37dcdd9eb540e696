//! Side-by-side examples: problems where the baseline and a variant disagree, shown with both
//! first samples.

use std::collections::HashMap;

use codeplan_data::Problem;

use crate::report::{Example, ExampleSide, ProblemResult, VariantReport};
use crate::scores::first_scored;

/// Longest question shown, in characters.
const QUESTION_CHARS: usize = 800;
/// Longest code shown, in lines and characters.
const CODE_LINES: usize = 60;
const CODE_CHARS: usize = 4000;

/// A problem picked for an example, before its code is read.
pub(crate) struct Pick {
    /// The problem's id.
    pub problem_id: String,
    /// Why it was picked.
    pub why: &'static str,
    /// The baseline's first scored sample index.
    pub baseline_idx: usize,
    /// The variant's first scored sample index.
    pub variant_idx: usize,
}

/// Up to `count` problems both scored, most telling first: the variant's first sample passed
/// and the baseline's did not, then the reverse, then problems whose passed counts differ, then
/// (only if nothing differs) any problem. Ties keep evaluation-set order.
pub(crate) fn pick(base: &VariantReport, var: &VariantReport, count: usize) -> Vec<Pick> {
    let by_id: HashMap<&str, &ProblemResult> = base
        .problems
        .iter()
        .map(|p| (p.problem_id.as_str(), p))
        .collect();
    let mut tiers: [Vec<Pick>; 4] = Default::default();
    for vp in &var.problems {
        let Some(bp) = by_id.get(vp.problem_id.as_str()) else {
            continue;
        };
        let (Some(bs), Some(vs)) = (first_scored(bp), first_scored(vp)) else {
            continue;
        };
        let (tier, why) = match (bs.passed, vs.passed) {
            (false, true) => (0, "only the variant's first sample passed"),
            (true, false) => (1, "only the baseline's first sample passed"),
            _ if bp.c * vp.n != vp.c * bp.n => (2, "the share of passed samples differs"),
            _ => (3, "no difference (shown for illustration)"),
        };
        tiers[tier].push(Pick {
            problem_id: vp.problem_id.clone(),
            why,
            baseline_idx: bs.sample_idx,
            variant_idx: vs.sample_idx,
        });
    }
    let [gain, loss, share, same] = tiers;
    let differing: Vec<Pick> = gain.into_iter().chain(loss).chain(share).collect();
    let chosen = if differing.is_empty() {
        same
    } else {
        differing
    };
    chosen.into_iter().take(count).collect()
}

/// Cuts `s` to at most `max` characters, saying so.
fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}\n… (truncated)", &s[..i]),
        None => s.to_owned(),
    }
}

fn cut_code(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let text = if lines.len() > CODE_LINES {
        format!("{}\n… (truncated)", lines[..CODE_LINES].join("\n"))
    } else {
        code.to_owned()
    };
    cut_chars(&text, CODE_CHARS)
}

/// Builds the example for `pick`, with the codes found by (problem, sample index).
pub(crate) fn make(
    pick: &Pick,
    problem: &Problem,
    base: &VariantReport,
    var: &VariantReport,
    base_codes: &HashMap<(String, usize), String>,
    var_codes: &HashMap<(String, usize), String>,
) -> Example {
    let side = |v: &VariantReport, idx: usize, codes: &HashMap<(String, usize), String>| {
        let p = v
            .problems
            .iter()
            .find(|p| p.problem_id == pick.problem_id)
            .expect("picked from these results");
        let s = p
            .samples
            .iter()
            .find(|s| s.sample_idx == idx)
            .expect("picked from these samples");
        ExampleSide {
            name: v.name.clone(),
            sample_idx: idx,
            passed: s.passed,
            status: s.status,
            c: p.c,
            n: p.n,
            code: codes
                .get(&(pick.problem_id.clone(), idx))
                .map(|c| cut_code(c))
                .unwrap_or_else(|| "(not in the samples file)".to_owned()),
        }
    };
    Example {
        problem_id: pick.problem_id.clone(),
        difficulty: problem.difficulty_label().to_owned(),
        question: cut_chars(problem.question.trim(), QUESTION_CHARS),
        why: pick.why.to_owned(),
        baseline: side(base, pick.baseline_idx, base_codes),
        variant: side(var, pick.variant_idx, var_codes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_respects_characters_and_lines() {
        assert_eq!(cut_chars("héllo", 10), "héllo");
        assert_eq!(cut_chars("héllo", 2), "hé\n… (truncated)");
        let long: String = (0..100).map(|i| format!("x = {i}\n")).collect();
        let cut = cut_code(&long);
        assert_eq!(cut.lines().count(), CODE_LINES + 1);
        assert!(cut.ends_with("(truncated)"));
    }
}
