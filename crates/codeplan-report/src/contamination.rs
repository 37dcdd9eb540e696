//! The contamination check: how much of each evaluation question appears, word for word, in
//! the training questions or in the plans the student was trained on.
//!
//! Tokenisation is deliberately simple: lowercase, split on every character that is not
//! alphanumeric, drop empty pieces. A question's word n-grams (distinct, n words each) are
//! looked up in every reference document (one training question, or one plan); its overlap
//! with a document is the share of its n-grams found there, and its score is the largest
//! overlap with any single document. A question with fewer than n words has no n-gram and is
//! checked for exact duplicates only. Exact duplicates (same token sequence as a training
//! question) are flagged whatever the threshold.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use codeplan_data::Problem;

use crate::ContaminationSettings;

/// The check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContaminationReport {
    /// Word n-gram size.
    pub n: usize,
    /// Overlap at or above which a problem is flagged.
    pub threshold: f64,
    /// Training questions compared against.
    pub train_questions: usize,
    /// Plans compared against.
    pub plans: usize,
    /// Evaluation problems flagged (overlap at or above the threshold, or an exact duplicate).
    pub flagged: usize,
    /// Evaluation problems that are exact duplicates of a training question.
    pub exact_duplicates: usize,
    /// One entry per evaluation problem, in evaluation-set order.
    pub problems: Vec<ProblemOverlap>,
}

/// One evaluation problem's overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemOverlap {
    /// The problem's id.
    pub problem_id: String,
    /// Its distinct n-grams (0 when the question has fewer than n words).
    pub ngrams: usize,
    /// The largest share of its n-grams found in one reference document.
    pub max_overlap: f64,
    /// That document (`train question <id>` or `plan for <id> (<file>:<line>)`).
    pub source: Option<String>,
    /// The training question it duplicates exactly, if any.
    pub exact_duplicate_of: Option<String>,
    /// Overlap at or above the threshold, or an exact duplicate.
    pub flagged: bool,
}

/// A reference document for the check.
pub(crate) struct Reference {
    /// How the report names it.
    pub label: String,
    /// Its text.
    pub text: String,
}

/// Lowercase words: maximal runs of alphanumeric characters.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Hashes of the distinct word n-grams of `words` (64-bit hashes: a collision among the few
/// million n-grams of a benchmark is vanishingly unlikely, and the memory is a fraction of the text's).
fn ngrams(words: &[String], n: usize) -> HashSet<u64> {
    if words.len() < n {
        return HashSet::new();
    }
    words
        .windows(n)
        .map(|w| {
            let mut h = DefaultHasher::new();
            w.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Runs the check of `eval` against `train` questions and `plans`.
pub(crate) fn check(
    eval: &[Problem],
    train: &[Problem],
    plans: &[Reference],
    settings: &ContaminationSettings,
) -> ContaminationReport {
    let n = settings.n;
    let mut docs: Vec<String> = Vec::new();
    // n-gram → documents holding it (each document listed once).
    let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut add = |label: String, text: &str, docs: &mut Vec<String>| {
        let id = docs.len() as u32;
        docs.push(label);
        for g in ngrams(&tokens(text), n) {
            index.entry(g).or_default().push(id);
        }
    };
    for p in train {
        add(format!("train question {}", p.id), &p.question, &mut docs);
    }
    for r in plans {
        add(r.label.clone(), &r.text, &mut docs);
    }
    let exact: HashMap<String, &str> = train
        .iter()
        .map(|p| (tokens(&p.question).join(" "), p.id.as_str()))
        .filter(|(t, _)| !t.is_empty())
        .collect();
    let problems: Vec<ProblemOverlap> = eval
        .iter()
        .map(|p| {
            let words = tokens(&p.question);
            let grams = ngrams(&words, n);
            let mut hits: HashMap<u32, usize> = HashMap::new();
            for g in &grams {
                for &d in index.get(g).map(Vec::as_slice).unwrap_or(&[]) {
                    *hits.entry(d).or_insert(0) += 1;
                }
            }
            // Ties go to the earliest document, so the named source is stable.
            let best = hits
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let (max_overlap, source) = match best {
                Some((d, c)) => (
                    c as f64 / grams.len() as f64,
                    Some(docs[d as usize].clone()),
                ),
                None => (0.0, None),
            };
            let exact_duplicate_of = exact.get(&words.join(" ")).map(|id| id.to_string());
            ProblemOverlap {
                problem_id: p.id.clone(),
                ngrams: grams.len(),
                flagged: exact_duplicate_of.is_some()
                    || (!grams.is_empty() && max_overlap >= settings.threshold),
                max_overlap,
                source,
                exact_duplicate_of,
            }
        })
        .collect();
    ContaminationReport {
        n,
        threshold: settings.threshold,
        train_questions: train.len(),
        plans: plans.len(),
        flagged: problems.iter().filter(|p| p.flagged).count(),
        exact_duplicates: problems
            .iter()
            .filter(|p| p.exact_duplicate_of.is_some())
            .count(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenisation_is_lowercase_alphanumeric_runs() {
        assert_eq!(
            tokens("Given N, print N*2 — it's EASY!"),
            ["given", "n", "print", "n", "2", "it", "s", "easy"]
        );
        assert!(tokens(" ,.; ").is_empty());
    }

    #[test]
    fn ngrams_are_distinct_windows() {
        let w = tokens("a b c a b c");
        assert_eq!(ngrams(&w, 3).len(), 3); // abc, bca, cab
        assert!(ngrams(&w, 7).is_empty());
    }
}
