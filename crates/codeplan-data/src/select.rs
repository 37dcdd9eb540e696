//! Choosing a subset of the loaded problems (by id, by difficulty, first N).

use std::collections::{BTreeSet, HashSet};

use crate::error::DataError;
use crate::problem::Problem;

/// The APPS difficulty levels, always accepted by a selection even when none is loaded.
pub const APPS_DIFFICULTIES: [&str; 3] = ["introductory", "interview", "competition"];

/// Which problems to keep. Filters apply in order: ids, then difficulties, then `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Keep only these problem ids (every one must exist).
    pub ids: Option<Vec<String>>,
    /// Keep only these difficulty labels (see [`Problem::difficulty_label`]; `all` for benchmarks without levels).
    pub difficulties: Option<Vec<String>>,
    /// Keep at most this many problems (the first ones, in file order).
    pub limit: Option<usize>,
}

impl Selection {
    /// Whether this selection keeps every problem.
    pub fn is_all(&self) -> bool {
        self.ids.is_none() && self.difficulties.is_none() && self.limit.is_none()
    }

    /// Applies the selection, keeping the problems' order (not the order the ids were asked in).
    ///
    /// A requested id that no problem has is an error listing all such ids: a typo should not
    /// silently shrink an evaluation. A difficulty is valid when it is an APPS level or the label
    /// of some loaded problem; otherwise the error lists the valid names. A valid level that no
    /// loaded problem has simply selects nothing.
    ///
    /// ```
    /// use codeplan_data::{Problem, Selection, Source, Tests, CheckTests};
    /// let p = |id: &str| Problem {
    ///     id: id.into(), source: Source::HumanEval, split: None, question: String::new(),
    ///     starter_code: String::new(), difficulty: None, solutions: vec![],
    ///     tests: Tests::Check(CheckTests { test: String::new(), entry_point: "f".into() }),
    /// };
    /// let sel = Selection { ids: Some(vec!["c".into(), "a".into()]), ..Default::default() };
    /// let kept = sel.apply(vec![p("a"), p("b"), p("c")]).unwrap();
    /// assert_eq!(kept.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    /// ```
    pub fn apply(&self, problems: Vec<Problem>) -> Result<Vec<Problem>, DataError> {
        // Valid labels come from everything loaded, before the id filter narrows it down.
        let valid: BTreeSet<String> = APPS_DIFFICULTIES
            .iter()
            .map(|s| s.to_string())
            .chain(problems.iter().map(|p| p.difficulty_label().to_owned()))
            .collect();
        let mut kept = problems;
        if let Some(ids) = &self.ids {
            let present: HashSet<&str> = kept.iter().map(|p| p.id.as_str()).collect();
            let mut unknown: Vec<String> = Vec::new();
            for id in ids {
                if !present.contains(id.as_str()) && !unknown.contains(id) {
                    unknown.push(id.clone());
                }
            }
            if !unknown.is_empty() {
                return Err(DataError::UnknownIds(unknown));
            }
            let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
            kept.retain(|p| wanted.contains(p.id.as_str()));
        }
        if let Some(levels) = &self.difficulties {
            let unknown: Vec<String> = levels
                .iter()
                .filter(|l| !valid.contains(l.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(DataError::UnknownDifficulties {
                    unknown,
                    valid: valid.into_iter().collect(),
                });
            }
            kept.retain(|p| levels.iter().any(|l| l == p.difficulty_label()));
        }
        if let Some(limit) = self.limit {
            kept.truncate(limit);
        }
        Ok(kept)
    }
}
