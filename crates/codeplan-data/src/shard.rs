//! Splitting a selection of problems into shards, recording which shard an output is, and
//! putting shard outputs back together in the order an unsharded run writes.
//!
//! The partition is round-robin by position: shard `i` of `N` takes the problems at positions
//! `i, i + N, i + 2N, …` of the selection. Benchmarks are often ordered by difficulty (APPS
//! test: interview, then competition, then introductory), so contiguous blocks would give one
//! shard all the slow problems; dealing them out keeps shards within one problem of each other
//! and mixes the levels. Every verb writes its problems in selection order, so a merge puts each
//! problem's lines back at its position.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

/// Name of the record a shard run leaves in its output folder (or beside its output file,
/// as `<file>.shard.json`).
pub const SHARD_RECORD: &str = "shard.json";

/// Errors of parsing, checking and merging shards; each names the shard or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A malformed `i/N`.
    #[error("{0}")]
    Parse(String),
    /// The shards given do not form one complete, consistent set.
    #[error("{0}")]
    Mismatch(String),
    /// A shard's output does not match its record.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A record could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// One part of a run split `count` ways (0-based `index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which part, `0 ≤ index < count`.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = ShardError;

    /// Parses `i/N` (e.g. `0/4`), checking `0 ≤ i < N`.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = |why: &str| ShardError::Parse(why.to_owned());
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected INDEX/COUNT, e.g. 0/4 (0-based index)"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("the index (before /) must be a whole number ≥ 0"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("the count (after /) must be a whole number ≥ 1"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        if index >= count {
            return Err(bad("index must be below the count (indices are 0-based)"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the item at `position` of the selection belongs to this shard.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// Keeps this shard's items (positions `index, index + count, …`), in order.
    ///
    /// ```
    /// use codeplan_data::Shard;
    /// let s: Shard = "1/3".parse().unwrap();
    /// assert_eq!(s.apply((0..8).collect()), vec![1, 4, 7]);
    /// ```
    pub fn apply<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(_, t)| t)
            .collect()
    }
}

/// A problem of the whole selection, as a shard record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedProblem {
    /// The problem id.
    pub id: String,
    /// Its difficulty label (summaries are per difficulty).
    pub difficulty: String,
}

impl SelectedProblem {
    /// The ids and difficulty labels of `problems`, in order.
    pub fn list(problems: &[Problem]) -> Vec<SelectedProblem> {
        problems
            .iter()
            .map(|p| SelectedProblem {
                id: p.id.clone(),
                difficulty: p.difficulty_label().to_owned(),
            })
            .collect()
    }
}

/// What a finished shard run records beside its outputs, so a merge can check it has every
/// shard exactly once, all made from the same selection and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The verb that wrote it: `generate`, `eval` or `distill`.
    pub kind: String,
    /// Which shard.
    pub shard: Shard,
    /// How problems were dealt out (`round-robin`: position `p` goes to shard `p mod N`).
    pub partition: String,
    /// The whole selection (before sharding), in order.
    pub selection: Vec<SelectedProblem>,
    /// Everything that decides the outputs (verb-specific); shards merge only when equal.
    pub settings: Value,
}

impl ShardRecord {
    /// A record for `shard` of `kind` over the whole `selection`.
    pub fn new(kind: &str, shard: Shard, selection: &[Problem], settings: Value) -> ShardRecord {
        ShardRecord {
            kind: kind.to_owned(),
            shard,
            partition: "round-robin".to_owned(),
            selection: SelectedProblem::list(selection),
            settings,
        }
    }

    /// Where the record of an output lives: `DIR/shard.json` for an output folder,
    /// `FILE.shard.json` beside an output file.
    pub fn path_for(output: &Path, folder: bool) -> PathBuf {
        if folder {
            output.join(SHARD_RECORD)
        } else {
            let mut name = output.file_name().unwrap_or_default().to_os_string();
            name.push(".");
            name.push(SHARD_RECORD);
            output.with_file_name(name)
        }
    }

    /// Writes the record through a temporary file and a rename (a crash leaves none or all).
    pub fn write(&self, path: &Path) -> Result<(), ShardError> {
        let io = |source| ShardError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("records serialise") + "\n";
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Removes a record left by an earlier run (its outputs are about to change).
    pub fn remove(path: &Path) -> Result<(), ShardError> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ShardError::Io {
                path: path.to_owned(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Reads the record of `output` (a shard's output file or folder).
    pub fn read(output: &Path) -> Result<(PathBuf, ShardRecord), ShardError> {
        let path = ShardRecord::path_for(output, output.is_dir());
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ShardError::Mismatch(format!(
                    "{}: no shard record ({}): the shard has not finished, or was not run with --shard",
                    output.display(),
                    path.display()
                ))
            } else {
                ShardError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let record = serde_json::from_str(&text).map_err(|e| ShardError::Output {
            path: path.clone(),
            message: format!("not a shard record: {e}"),
        })?;
        Ok((path, record))
    }
}

/// A complete, consistent set of shards, ordered by index.
#[derive(Debug, Clone)]
pub struct ShardSet {
    /// The verb that wrote them.
    pub kind: String,
    /// The whole selection.
    pub selection: Vec<SelectedProblem>,
    /// The settings they share.
    pub settings: Value,
    /// Each shard's output (file or folder), shard 0 first.
    pub outputs: Vec<PathBuf>,
}

impl ShardSet {
    /// Checks that `shards` (output path and record) are shards 0..N-1 of one split, each
    /// exactly once, of the same kind, selection and settings; the error names the missing,
    /// duplicate or mismatched shard.
    pub fn check(mut shards: Vec<(PathBuf, ShardRecord)>) -> Result<ShardSet, ShardError> {
        let mismatch = |m: String| Err(ShardError::Mismatch(m));
        let Some((first_path, first)) = shards.first().cloned() else {
            return mismatch("no shards given".into());
        };
        for (path, r) in &shards {
            if r.kind != first.kind {
                return mismatch(format!(
                    "{} is a {} shard but {} is a {} shard",
                    first_path.display(),
                    first.kind,
                    path.display(),
                    r.kind
                ));
            }
            if r.shard.count != first.shard.count || r.partition != first.partition {
                return mismatch(format!(
                    "{} is shard {} but {} is shard {}: they come from different splits",
                    first_path.display(),
                    first.shard,
                    path.display(),
                    r.shard
                ));
            }
        }
        shards.sort_by_key(|(_, r)| r.shard.index);
        for pair in shards.windows(2) {
            if pair[0].1.shard == pair[1].1.shard {
                return mismatch(format!(
                    "shard {} is given twice: {} and {}",
                    pair[0].1.shard,
                    pair[0].0.display(),
                    pair[1].0.display()
                ));
            }
        }
        let count = first.shard.count;
        let have: Vec<usize> = shards.iter().map(|(_, r)| r.shard.index).collect();
        let missing: Vec<String> = (0..count)
            .filter(|i| !have.contains(i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        if !missing.is_empty() {
            return mismatch(format!(
                "shard{} {} {} missing (given: {})",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                shards
                    .iter()
                    .map(|(p, r)| format!("{} = {}", r.shard, p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let (base_path, base) = &shards[0];
        for (path, r) in &shards[1..] {
            if r.selection != base.selection {
                return mismatch(format!(
                    "shard {} ({}) selected other problems than shard {} ({}): {}",
                    r.shard,
                    path.display(),
                    base.shard,
                    base_path.display(),
                    selection_difference(&base.selection, &r.selection)
                ));
            }
            if let Some(diff) = value_difference("", &base.settings, &r.settings) {
                return mismatch(format!(
                    "shard {} ({}) was made with other settings than shard {} ({}): {diff}",
                    r.shard,
                    path.display(),
                    base.shard,
                    base_path.display()
                ));
            }
        }
        Ok(ShardSet {
            kind: base.kind.clone(),
            selection: base.selection.clone(),
            settings: base.settings.clone(),
            outputs: shards.into_iter().map(|(p, _)| p).collect(),
        })
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.outputs.len()
    }

    /// Merges one JSONL file per shard (shard 0 first) into the unsharded order: problems in
    /// selection order, each problem's lines as its shard wrote them, byte for byte.
    ///
    /// Every line needs a `problem_id` (string or integer) of a problem that belongs to that
    /// shard; a line without its newline (a shard still writing, or killed) is an error.
    pub fn merge_jsonl(&self, files: &[(PathBuf, Vec<u8>)]) -> Result<MergedLines, ShardError> {
        assert_eq!(files.len(), self.count(), "one file per shard");
        let position: HashMap<&str, usize> = self
            .selection
            .iter()
            .enumerate()
            .map(|(p, s)| (s.id.as_str(), p))
            .collect();
        let mut per_problem: Vec<Vec<&[u8]>> = vec![Vec::new(); self.selection.len()];
        for (index, (path, bytes)) in files.iter().enumerate() {
            let shard = Shard {
                index,
                count: self.count(),
            };
            let bad = |line: usize, message: String| ShardError::Output {
                path: path.clone(),
                message: format!("line {line}: {message}"),
            };
            for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
                if !line.ends_with(b"\n") {
                    return Err(bad(
                        n + 1,
                        "incomplete last line (is the shard still running, or was it killed?)"
                            .into(),
                    ));
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let id = line_problem_id(line).map_err(|m| bad(n + 1, m))?;
                let Some(&p) = position.get(id.as_str()) else {
                    return Err(bad(
                        n + 1,
                        format!("problem {id} is not in the shards' selection"),
                    ));
                };
                if !shard.owns(p) {
                    return Err(bad(
                        n + 1,
                        format!(
                            "problem {id} belongs to shard {}/{}, not {shard}",
                            p % shard.count,
                            shard.count
                        ),
                    ));
                }
                per_problem[p].push(line);
            }
        }
        let lines_per_problem = per_problem.iter().map(Vec::len).collect();
        Ok(MergedLines {
            bytes: per_problem.concat().concat(),
            lines_per_problem,
        })
    }
}

/// The result of [`ShardSet::merge_jsonl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedLines {
    /// The merged file.
    pub bytes: Vec<u8>,
    /// Lines of each selected problem, in selection order (to check completeness).
    pub lines_per_problem: Vec<usize>,
}

fn line_problem_id(line: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Key {
        problem_id: Value,
    }
    let key: Key = serde_json::from_slice(line)
        .map_err(|e| format!("not a JSON line with a problem_id: {e}"))?;
    match key.problem_id {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("problem_id must be a string, found {other}")),
    }
}

fn selection_difference(a: &[SelectedProblem], b: &[SelectedProblem]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(p) => format!(
            "position {p} is {} ({}) vs {} ({})",
            a[p].id, a[p].difficulty, b[p].id, b[p].difficulty
        ),
        None => format!("{} vs {} problems", a.len(), b.len()),
    }
}

/// The first place two JSON values differ, as `path: a vs b`.
fn value_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    let here = || {
        Some(format!(
            "{}: {a} vs {b}",
            if path.is_empty() { "settings" } else { path }
        ))
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                value_difference(
                    &sub,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        _ if a == b => None,
        _ => here(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: usize, count: usize, ids: &[&str], settings: Value) -> (PathBuf, ShardRecord) {
        (
            PathBuf::from(format!("out-{index}")),
            ShardRecord {
                kind: "eval".into(),
                shard: Shard { index, count },
                partition: "round-robin".into(),
                selection: ids
                    .iter()
                    .map(|id| SelectedProblem {
                        id: id.to_string(),
                        difficulty: crate::UNRATED.into(),
                    })
                    .collect(),
                settings,
            },
        )
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        for (bad, why) in [
            ("3/2", "index must be below the count"),
            ("2/2", "index must be below the count"),
            ("x", "expected INDEX/COUNT"),
            ("0/0", "at least 1"),
            ("-1/2", "index"),
            ("1/y", "count"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn shards_cover_every_position_once() {
        for n in 1..5 {
            let mut all: Vec<usize> = (0..n)
                .flat_map(|i| Shard { index: i, count: n }.apply((0..11).collect()))
                .collect();
            all.sort();
            assert_eq!(all, (0..11).collect::<Vec<_>>());
        }
    }

    #[test]
    fn check_names_missing_duplicate_and_mismatched_shards() {
        let s = serde_json::json!({"n": 1, "judge": {"timeout": 4}});
        let ids = ["a", "b", "c"];
        let err = |v: Vec<(PathBuf, ShardRecord)>| ShardSet::check(v).unwrap_err().to_string();
        let e = err(vec![
            record(0, 3, &ids, s.clone()),
            record(2, 3, &ids, s.clone()),
        ]);
        assert!(e.contains("shard 1/3 is missing"), "{e}");
        let e = err(vec![
            record(0, 2, &ids, s.clone()),
            record(0, 2, &ids, s.clone()),
        ]);
        assert!(e.contains("shard 0/2 is given twice"), "{e}");
        let other = serde_json::json!({"n": 1, "judge": {"timeout": 8}});
        let e = err(vec![
            record(0, 2, &ids, s.clone()),
            record(1, 2, &ids, other),
        ]);
        assert!(
            e.contains("shard 1/2 (out-1)") && e.contains("judge.timeout: 4 vs 8"),
            "{e}"
        );
        let e = err(vec![
            record(0, 2, &ids, s.clone()),
            record(1, 2, &["a", "b"], s.clone()),
        ]);
        assert!(e.contains("selected other problems"), "{e}");
        let e = err(vec![
            record(0, 2, &ids, s.clone()),
            record(1, 3, &ids, s.clone()),
        ]);
        assert!(e.contains("different splits"), "{e}");
        assert!(
            ShardSet::check(vec![record(1, 2, &ids, s.clone()), record(0, 2, &ids, s)]).is_ok()
        );
    }

    #[test]
    fn merge_restores_selection_order() {
        let s = Value::Null;
        let ids = ["a", "b", "c", "d", "e"];
        let set =
            ShardSet::check(vec![record(0, 2, &ids, s.clone()), record(1, 2, &ids, s)]).unwrap();
        let line = |id: &str, k: usize| format!("{{\"problem_id\":\"{id}\",\"k\":{k}}}\n");
        let unsharded: String = ids
            .iter()
            .flat_map(|id| [line(id, 0), line(id, 1)])
            .collect();
        let part = |shard: usize| -> Vec<u8> {
            ids.iter()
                .enumerate()
                .filter(|(p, _)| p % 2 == shard)
                .flat_map(|(_, id)| [line(id, 0), line(id, 1)])
                .collect::<String>()
                .into_bytes()
        };
        let files = vec![(PathBuf::from("0"), part(0)), (PathBuf::from("1"), part(1))];
        let merged = set.merge_jsonl(&files).unwrap();
        assert_eq!(String::from_utf8(merged.bytes).unwrap(), unsharded);
        assert_eq!(merged.lines_per_problem, vec![2; 5]);
        // A line in the wrong shard, and a torn line, are named.
        let wrong = vec![(PathBuf::from("0"), part(1)), (PathBuf::from("1"), part(0))];
        let e = set.merge_jsonl(&wrong).unwrap_err().to_string();
        assert!(e.contains("problem b belongs to shard 1/2, not 0/2"), "{e}");
        let mut torn = part(1);
        torn.pop();
        let e = set
            .merge_jsonl(&[(PathBuf::from("0"), part(0)), (PathBuf::from("1"), torn)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("incomplete last line"), "{e}");
    }
}
