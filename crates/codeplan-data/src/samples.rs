//! Samples files: reading model programs to judge, writing them, and reference solutions as samples.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{DataError, Invalid, InvalidKind, Skipped};
use crate::extract::CodeExtraction;
use crate::json::{jsonl_lines, parse_object, read_text, Record};
use crate::problem::{Problem, Source};
use crate::sample::Sample;

/// How to read a samples file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleOptions {
    /// Skip bad lines (each listed in [`LoadedSamples::skipped`]) instead of failing on the first.
    pub skip_invalid: bool,
    /// How to take the program out of each line's text.
    pub extract: CodeExtraction,
}

/// The samples read from a file, and the lines left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedSamples {
    /// The samples, in file order.
    pub samples: Vec<Sample>,
    /// Lines skipped because `skip_invalid` was on; empty otherwise.
    pub skipped: Vec<Skipped>,
}

/// Reads a JSONL (or JSONL.gz) samples file against the loaded `problems`.
///
/// Two line forms are accepted, and may be mixed:
/// - `{"problem_id", "sample_idx"?, "code"}`: `problem_id` is a string or an integer (written as
///   decimal text); `code` is the complete program.
/// - human-eval style `{"task_id", "completion"}`: for HumanEval and MBPP problems the program is
///   the problem's prompt followed by the completion (as human-eval's evaluator builds it); for
///   other problems the completion alone.
///
/// [`SampleOptions::extract`] is applied to `code` / `completion` before anything else.
/// A missing `sample_idx` is the number of samples already accepted for that problem (so a file
/// without indices numbers each problem's samples 0, 1, 2, ... in order of appearance).
/// Errors (with file, line, problem id and field): malformed lines, missing or wrongly typed
/// fields, a problem id that is not loaded, and a (problem, sample index) pair seen twice.
/// An empty file is an error too, as it almost always means generation failed.
///
/// ```
/// # use codeplan_data::*;
/// # let dir = tempfile::tempdir().unwrap();
/// let problems = load_problems(
///     std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/humaneval/HumanEval.jsonl.gz")),
///     &LoadOptions::default(),
/// ).unwrap().problems;
/// let path = dir.path().join("samples.jsonl");
/// std::fs::write(&path, "{\"task_id\": \"HumanEval/0\", \"completion\": \"    return False\\n\"}\n").unwrap();
/// let loaded = read_samples(&path, &problems, &SampleOptions::default()).unwrap();
/// assert_eq!(loaded.samples[0].sample_idx, 0);
/// assert!(loaded.samples[0].code.starts_with("from typing import List"));
/// assert!(loaded.samples[0].code.ends_with("    return False\n"));
/// ```
pub fn read_samples(
    path: &Path,
    problems: &[Problem],
    opts: &SampleOptions,
) -> Result<LoadedSamples, DataError> {
    let text = read_text(path)?;
    let lines = jsonl_lines(&text);
    if lines.is_empty() {
        return Err(Invalid::new(path, InvalidKind::EmptyFile, "empty file: no samples").into());
    }
    let by_id: HashMap<&str, &Problem> = problems.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut out = LoadedSamples::default();
    let mut seen: HashMap<(String, usize), usize> = HashMap::new();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for (line, raw) in lines {
        let result = parse_object(path, line, raw).and_then(|obj| {
            let mut rec = Record::new(path, Some(line), &obj);
            let sample = sample_from_record(&mut rec, &by_id, &accepted, opts.extract)?;
            let key = (sample.problem_id.clone(), sample.sample_idx);
            if let Some(first) = seen.get(&key) {
                return Err(rec.err(
                    "sample_idx",
                    InvalidKind::Duplicate,
                    format!(
                        "sample {} of this problem appears twice: at line {first} and at line {line}",
                        sample.sample_idx
                    ),
                ));
            }
            seen.insert(key, line);
            Ok(sample)
        });
        match result {
            Ok(sample) => {
                *accepted.entry(sample.problem_id.clone()).or_default() += 1;
                out.samples.push(sample);
            }
            Err(inv) if opts.skip_invalid => out.skipped.push(inv.to_skipped()),
            Err(inv) => return Err(inv.into()),
        }
    }
    Ok(out)
}

fn sample_from_record(
    rec: &mut Record<'_>,
    by_id: &HashMap<&str, &Problem>,
    accepted: &HashMap<String, usize>,
    extract: CodeExtraction,
) -> Result<Sample, Invalid> {
    let human_eval_style = !rec.has("problem_id") && rec.has("task_id");
    let (id_field, text_field) = if human_eval_style {
        ("task_id", "completion")
    } else {
        ("problem_id", "code")
    };
    if !rec.has(id_field) {
        return Err(rec.err(
            id_field,
            InvalidKind::MissingField,
            "missing field (a sample line is {\"problem_id\", \"sample_idx\"?, \"code\"} or human-eval style {\"task_id\", \"completion\"})",
        ));
    }
    let id = rec.req_id(id_field)?;
    rec.id = Some(id.clone());
    let Some(problem) = by_id.get(id.as_str()) else {
        return Err(rec.err(
            id_field,
            InvalidKind::UnknownProblem,
            "no loaded problem has this id",
        ));
    };
    let text = rec.req_str(text_field)?;
    let sample_idx = match rec.get("sample_idx") {
        None => accepted.get(&id).copied().unwrap_or(0),
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| match v {
                Value::Number(_) => rec.err(
                    "sample_idx",
                    InvalidKind::BadValue,
                    format!("expected a non-negative integer, found {v}"),
                ),
                other => rec.wrong_type("sample_idx", "a non-negative integer", other),
            })?,
    };
    let body = extract.apply(text);
    let code = if human_eval_style && matches!(problem.source, Source::HumanEval | Source::Mbpp) {
        format!("{}{}", problem.starter_code, body)
    } else {
        body.into_owned()
    };
    Ok(Sample {
        problem_id: id,
        sample_idx,
        code,
    })
}

/// Writes samples as JSONL `{"problem_id", "sample_idx", "code"}`, one per line.
///
/// The file is written beside the target and renamed over it at the end, so an interrupted run
/// never leaves a truncated samples file that a later run would read as complete.
pub fn write_samples(path: &Path, samples: &[Sample]) -> Result<(), DataError> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        for s in samples {
            serde_json::to_writer(&mut w, s)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, "cannot write", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, "cannot write", e)
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// The problems' reference solutions as samples (`sample_idx` = solution index), at most
/// `max_per_problem` each; for dataset health checks (every reference should pass) and benchmarks.
pub fn solutions_as_samples(problems: &[Problem], max_per_problem: Option<usize>) -> Vec<Sample> {
    problems
        .iter()
        .flat_map(|p| {
            p.solutions
                .iter()
                .take(max_per_problem.unwrap_or(usize::MAX))
                .enumerate()
                .map(|(i, code)| Sample {
                    problem_id: p.id.clone(),
                    sample_idx: i,
                    code: code.clone(),
                })
        })
        .collect()
}
