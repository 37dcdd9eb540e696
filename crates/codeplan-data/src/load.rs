//! The one entry point for problems: format detection, `skip_invalid`, and merging several sources.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::error::{DataError, DuplicateId, Invalid, InvalidKind, Skipped};
use crate::json::{jsonl_lines, parse_object, read_text, Record};
use crate::problem::{Problem, Source};
use crate::{apps, humaneval};

/// Which reader to use for a data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Decide from the path: a folder is the APPS folder layout; a JSONL file is recognised by the
    /// fields of its first record (`input_output` → APPS; `prompt`/`entry_point`/`test` →
    /// HumanEval, or MBPP when `task_id` starts with `Mbpp`).
    #[default]
    Auto,
    /// APPS: codeparrot JSONL schema, or the original folder layout.
    Apps,
    /// HumanEval JSONL (optionally gzipped).
    HumanEval,
    /// MBPP in the HumanEval-like CodeT form (canonical solutions get re-indented).
    Mbpp,
}

impl Format {
    /// The name used on the command line and in configuration files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Apps => "apps",
            Format::HumanEval => "humaneval",
            Format::Mbpp => "mbpp",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = DataError;

    /// Parses `auto`, `apps`, `humaneval` (or `human-eval`, `human_eval`) and `mbpp`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "apps" => Ok(Format::Apps),
            "humaneval" | "human-eval" | "human_eval" => Ok(Format::HumanEval),
            "mbpp" => Ok(Format::Mbpp),
            _ => Err(DataError::UnknownFormatName(s.to_owned())),
        }
    }
}

/// How to load problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Skip bad records (each one listed in [`Loaded::skipped`]) instead of failing on the first.
    pub skip_invalid: bool,
    /// The format, or [`Format::Auto`] to detect it.
    pub format: Format,
}

/// The problems read from one or more sources, and the records left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The problems, in file order (APPS folders: by numeric id).
    pub problems: Vec<Problem>,
    /// Records skipped because `skip_invalid` was on; empty otherwise.
    pub skipped: Vec<Skipped>,
}

/// Loads the problems at `path`: an APPS folder, or a JSONL / JSONL.gz file of any supported format.
///
/// Problem ids must be unique within the path; a repeated id is a bad record. With
/// `skip_invalid`, bad records are left out and listed in [`Loaded::skipped`]; errors about the
/// whole file (unreadable, empty, unrecognised format) are returned regardless.
pub fn load_problems(path: &Path, opts: &LoadOptions) -> Result<Loaded, DataError> {
    let mut skipped = Vec::new();
    let problems = if path.is_dir() {
        match opts.format {
            Format::Auto | Format::Apps => {
                apps::load_folder(path, opts.skip_invalid, &mut skipped)?
            }
            other => {
                return Err(Invalid::new(
                    path,
                    InvalidKind::UnknownFormat,
                    format!(
                        "is a folder, which is read as the APPS folder layout; format `{other}` needs a JSONL file"
                    ),
                )
                .into())
            }
        }
    } else {
        load_jsonl(path, opts, &mut skipped)?
    };
    Ok(Loaded { problems, skipped })
}

/// Loads every path in order and merges them with [`merge_loaded`] (ids must be unique across all).
pub fn load_all<P: AsRef<Path>>(paths: &[P], opts: &LoadOptions) -> Result<Loaded, DataError> {
    let parts = paths
        .iter()
        .map(|p| Ok((p.as_ref().to_path_buf(), load_problems(p.as_ref(), opts)?)))
        .collect::<Result<Vec<_>, DataError>>()?;
    merge_loaded(parts)
}

/// Concatenates loaded sources (each named by its path, for the error), refusing duplicate ids.
///
/// Samples and verdicts are keyed by problem id, so two problems with one id could not be told
/// apart later; every clash is listed in the error. Note that APPS train and test reuse ids.
pub fn merge_loaded(
    parts: impl IntoIterator<Item = (PathBuf, Loaded)>,
) -> Result<Loaded, DataError> {
    let mut merged = Loaded::default();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut dups = Vec::new();
    for (source, loaded) in parts {
        for p in &loaded.problems {
            match seen.get(&p.id) {
                Some(first) => dups.push(DuplicateId {
                    id: p.id.clone(),
                    first: first.clone(),
                    second: source.clone(),
                }),
                None => {
                    seen.insert(p.id.clone(), source.clone());
                }
            }
        }
        merged.problems.extend(loaded.problems);
        merged.skipped.extend(loaded.skipped);
    }
    if dups.is_empty() {
        Ok(merged)
    } else {
        Err(DataError::DuplicateProblems(dups))
    }
}

/// A JSONL line number with its parsed object (or why it is not one).
type ParsedLine = (usize, Result<serde_json::Map<String, Value>, Invalid>);

/// The record format `obj` looks like, if any.
fn detect(obj: &serde_json::Map<String, Value>) -> Option<Format> {
    if obj.contains_key("input_output") {
        return Some(Format::Apps);
    }
    let humaneval_like = obj.contains_key("entry_point")
        && obj.contains_key("test")
        && (obj.contains_key("canonical_solution") || obj.contains_key("prompt"));
    if !humaneval_like {
        return None;
    }
    let is_mbpp = obj
        .get("task_id")
        .and_then(Value::as_str)
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("mbpp"));
    Some(if is_mbpp {
        Format::Mbpp
    } else {
        Format::HumanEval
    })
}

fn load_jsonl(
    path: &Path,
    opts: &LoadOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Problem>, DataError> {
    let text = read_text(path)?;
    let lines = jsonl_lines(&text);
    if lines.is_empty() {
        return Err(Invalid::new(path, InvalidKind::EmptyFile, "empty file: no records").into());
    }
    let parsed: Vec<ParsedLine> = lines
        .iter()
        .map(|&(n, l)| (n, parse_object(path, n, l)))
        .collect();

    let format = match opts.format {
        Format::Auto => detect_file(path, &parsed, opts.skip_invalid)?,
        f => f,
    };
    // Only an APPS file's name says which split it is.
    let split = match format {
        Format::Apps => path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .and_then(apps::split_name),
        _ => None,
    };

    let mut problems = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (line, obj) in parsed {
        let result = obj.and_then(|obj| {
            let mut rec = Record::new(path, Some(line), &obj);
            let problem = match format {
                Format::Apps | Format::Auto => apps::problem_from_record(&mut rec, split),
                Format::HumanEval => humaneval::problem_from_record(&mut rec, Source::HumanEval),
                Format::Mbpp => humaneval::problem_from_record(&mut rec, Source::Mbpp),
            }?;
            if let Some(first) = first_line.get(&problem.id) {
                return Err(rec.err_record(
                    InvalidKind::Duplicate,
                    format!("duplicate problem id: already defined at line {first}"),
                ));
            }
            first_line.insert(problem.id.clone(), line);
            Ok(problem)
        });
        match result {
            Ok(p) => problems.push(p),
            Err(inv) if opts.skip_invalid => skipped.push(inv.to_skipped()),
            Err(inv) => return Err(inv.into()),
        }
    }
    Ok(problems)
}

/// Detects the format from the first record that is a JSON object.
fn detect_file(
    path: &Path,
    parsed: &[ParsedLine],
    skip_invalid: bool,
) -> Result<Format, DataError> {
    for (line, obj) in parsed {
        match obj {
            Ok(obj) => {
                return detect(obj).ok_or_else(|| {
                    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
                    fields.sort_unstable();
                    Invalid::new(
                        path,
                        InvalidKind::UnknownFormat,
                        format!(
                            "cannot tell the data format from the record's fields ({}): expected \
                             `input_output` (APPS) or `prompt`, `entry_point`, `test` \
                             (HumanEval/MBPP); name the format explicitly",
                            fields.join(", ")
                        ),
                    )
                    .at_line(*line)
                    .into()
                })
            }
            // Report the malformed line itself rather than a vaguer "unknown format".
            Err(inv) if !skip_invalid => return Err(inv.clone().into()),
            Err(_) => {}
        }
    }
    Err(Invalid::new(
        path,
        InvalidKind::UnknownFormat,
        "no line is a JSON object, so the format cannot be detected",
    )
    .into())
}
