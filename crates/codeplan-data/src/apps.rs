//! APPS problems: the codeparrot/apps JSONL schema and the original `<split>/<id>/` folder layout.
//!
//! Both layouts carry the same pieces: the statement, the tests as JSON (`input_output`), the
//! reference programs as JSON (`solutions`), a difficulty and optional starter code. The test
//! values are kept as raw JSON because the APPS judge interprets them with its own quirks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{DataError, Invalid, InvalidKind, Skipped};
use crate::json::{json_error_text, read_text, type_name, Record};
use crate::problem::{IoTests, Problem, Source, Tests};

/// Reads one codeparrot-schema record (`problem_id`, `question`, `solutions`, `input_output`,
/// `difficulty`, `url`, `starter_code`).
///
/// `problem_id` and `question` and `input_output` are required; `solutions`, `difficulty` and
/// `starter_code` may be absent or `null` (a user's own test file need not carry solutions).
/// `solutions` and `input_output` are JSON *text* in the codeparrot schema; an already-parsed
/// JSON list/object is accepted too.
pub(crate) fn problem_from_record(
    rec: &mut Record<'_>,
    split: Option<&str>,
) -> Result<Problem, Invalid> {
    let id = rec.req_id("problem_id")?;
    rec.id = Some(id.clone());
    let question = rec.req_str("question")?.to_owned();
    let solutions = parse_solutions(rec, "solutions", rec.get("solutions"))?;
    let io = parse_input_output(rec, "input_output", rec.get("input_output"))?;
    let difficulty = rec.opt_str("difficulty")?.map(str::to_owned);
    let starter_code = rec.opt_str("starter_code")?.unwrap_or_default().to_owned();
    // `url` is not part of `Problem`, but a wrong type still means a damaged record.
    rec.opt_str("url")?;
    Ok(Problem {
        id,
        source: Source::Apps,
        split: split.map(str::to_owned),
        question,
        starter_code,
        difficulty,
        tests: Tests::Io(io),
        solutions,
    })
}

/// Parses the `solutions` value: JSON text of a list of programs (`""` and `"[]"` mean none), or a list.
pub(crate) fn parse_solutions(
    rec: &Record<'_>,
    field: &str,
    value: Option<&Value>,
) -> Result<Vec<String>, Invalid> {
    let parsed;
    let list = match value {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            parsed = parse_embedded(rec, field, s)?;
            &parsed
        }
        Some(v @ Value::Array(_)) => v,
        Some(other) => {
            return Err(rec.wrong_type(field, "a JSON string holding a list of programs", other))
        }
    };
    let Value::Array(items) = list else {
        return Err(rec.err(
            field,
            InvalidKind::EmbeddedJson,
            format!(
                "expected a JSON list of programs, found {}",
                type_name(list)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(rec.err(
                field,
                InvalidKind::EmbeddedJson,
                format!(
                    "solution {i}: expected a string (a program), found {}",
                    type_name(other)
                ),
            )),
        })
        .collect()
}

/// Parses the `input_output` value: JSON text (or an object) `{"inputs", "outputs", "fn_name"?}`.
pub(crate) fn parse_input_output(
    rec: &Record<'_>,
    field: &str,
    value: Option<&Value>,
) -> Result<IoTests, Invalid> {
    let parsed;
    let obj = match value {
        None => return Err(rec.missing(field)),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(rec.err(
                field,
                InvalidKind::BadValue,
                "empty string: the problem has no tests",
            ))
        }
        Some(Value::String(s)) => {
            parsed = parse_embedded(rec, field, s)?;
            &parsed
        }
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(rec.wrong_type(
                field,
                "a JSON string holding {\"inputs\", \"outputs\"}",
                other,
            ))
        }
    };
    let Value::Object(map) = obj else {
        return Err(rec.err(
            field,
            InvalidKind::EmbeddedJson,
            format!(
                "expected a JSON object {{\"inputs\", \"outputs\"}}, found {}",
                type_name(obj)
            ),
        ));
    };
    let list = |name: &str| -> Result<Vec<Value>, Invalid> {
        let sub = format!("{field}.{name}");
        match map.get(name) {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(other) => Err(rec.wrong_type(&sub, "a list", other)),
            None => Err(rec.missing(&sub)),
        }
    };
    let inputs = list("inputs")?;
    let outputs = list("outputs")?;
    let fn_name = match map.get("fn_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(rec.err(
                &format!("{field}.fn_name"),
                InvalidKind::BadValue,
                "empty function name",
            ))
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(rec.wrong_type(&format!("{field}.fn_name"), "a string", other)),
    };
    if inputs.len() != outputs.len() {
        return Err(rec.err(
            field,
            InvalidKind::BadValue,
            format!(
                "`inputs` has {} entries but `outputs` has {}; they must pair up",
                inputs.len(),
                outputs.len()
            ),
        ));
    }
    // A problem without tests would be "passed" by any program; refuse it rather than inflate pass@k.
    if inputs.is_empty() {
        return Err(rec.err(
            field,
            InvalidKind::BadValue,
            "no tests (`inputs` and `outputs` are empty)",
        ));
    }
    Ok(IoTests {
        fn_name,
        inputs,
        outputs,
    })
}

fn parse_embedded(rec: &Record<'_>, field: &str, text: &str) -> Result<Value, Invalid> {
    serde_json::from_str(text).map_err(|e| {
        rec.err(
            field,
            InvalidKind::EmbeddedJson,
            format!("the string is not valid JSON: {}", json_error_text(&e)),
        )
    })
}

/// The APPS split named by a folder or file stem (`train`, `test`), if it is one.
pub(crate) fn split_name(name: &str) -> Option<&'static str> {
    match name {
        "train" => Some("train"),
        "test" => Some("test"),
        _ => None,
    }
}

/// Loads the original APPS folder layout: a split folder of problem folders, or a parent of `train/`/`test/`.
pub(crate) fn load_folder(
    dir: &Path,
    skip_invalid: bool,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Problem>, DataError> {
    let splits: Vec<(PathBuf, &'static str)> = ["train", "test"]
        .into_iter()
        .map(|s| (dir.join(s), s))
        .filter(|(p, _)| p.is_dir())
        .collect();
    if splits.is_empty() {
        let split = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(split_name);
        return load_split(dir, split, skip_invalid, skipped);
    }
    let mut all = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut dups = Vec::new();
    for (path, split) in splits {
        for p in load_split(&path, Some(split), skip_invalid, skipped)? {
            match seen.get(&p.id) {
                Some(first) => dups.push(crate::error::DuplicateId {
                    id: p.id.clone(),
                    first: first.clone(),
                    second: path.clone(),
                }),
                None => {
                    seen.insert(p.id.clone(), path.clone());
                }
            }
            all.push(p);
        }
    }
    if !dups.is_empty() {
        return Err(DataError::DuplicateProblems(dups));
    }
    Ok(all)
}

fn load_split(
    dir: &Path,
    split: Option<&str>,
    skip_invalid: bool,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Problem>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list", e))?;
    let mut folders: Vec<(u64, PathBuf)> = Vec::new();
    let mut bad: Vec<Invalid> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "cannot list", e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Files (READMEs, archives) and hidden folders are not problems; every other folder must be one.
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        match name.parse::<u64>() {
            Ok(n) if name.bytes().all(|b| b.is_ascii_digit()) => folders.push((n, path)),
            _ => bad.push(Invalid::new(
                &path,
                InvalidKind::BadValue,
                "folder name is not a problem number (expected e.g. `0042`)",
            )),
        }
    }
    folders.sort();
    let mut outcomes: Vec<(u64, Result<Problem, DataError>)> =
        bad.into_iter().map(|inv| (0, Err(inv.into()))).collect();
    let mut previous: Option<&(u64, PathBuf)> = None;
    for item in &folders {
        let (n, path) = item;
        let result = match previous {
            Some((pn, ppath)) if pn == n => Err(Invalid::new(
                path,
                InvalidKind::Duplicate,
                format!("problem {n} is also in folder {}", ppath.display()),
            )
            .for_problem(Some(&n.to_string()))
            .into()),
            _ => load_problem_folder(path, *n, split),
        };
        outcomes.push((*n, result));
        previous = Some(item);
    }
    if folders.is_empty() && outcomes.is_empty() {
        return Err(Invalid::new(
            dir,
            InvalidKind::EmptyFile,
            "no problem folders found (expected folders like `0042/` holding question.txt and input_output.json, or `train/`/`test/` folders of them)",
        )
        .into());
    }
    let mut problems = Vec::new();
    for (_, result) in outcomes {
        match result {
            Ok(p) => problems.push(p),
            Err(DataError::Invalid(inv)) if skip_invalid => skipped.push(inv.to_skipped()),
            Err(e) => return Err(e),
        }
    }
    Ok(problems)
}

/// Reads `question.txt`, `input_output.json`, and the optional `solutions.json`,
/// `metadata.json`, `starter_code.py` of one problem folder.
fn load_problem_folder(dir: &Path, number: u64, split: Option<&str>) -> Result<Problem, DataError> {
    let id = number.to_string();
    let empty = Map::new();
    let question_path = dir.join("question.txt");
    let question = read_required(&question_path, &id)?;
    let io_path = dir.join("input_output.json");
    let io_text = read_required(&io_path, &id)?;
    let io_value = parse_file_json(&io_path, &id, &io_text)?;
    let io_rec = folder_record(&io_path, &id, &empty);
    let io = parse_input_output(&io_rec, "input_output", Some(&io_value))?;

    let sol_path = dir.join("solutions.json");
    let solutions = match read_optional(&sol_path)? {
        Some(text) => {
            let value = parse_file_json(&sol_path, &id, &text)?;
            parse_solutions(
                &folder_record(&sol_path, &id, &empty),
                "solutions",
                Some(&value),
            )?
        }
        None => Vec::new(),
    };

    let meta_path = dir.join("metadata.json");
    let difficulty = match read_optional(&meta_path)? {
        Some(text) => match parse_file_json(&meta_path, &id, &text)? {
            Value::Object(map) => {
                let rec = folder_record(&meta_path, &id, &map);
                rec.opt_str("url")?;
                rec.opt_str("difficulty")?.map(str::to_owned)
            }
            other => {
                return Err(Invalid::new(
                    &meta_path,
                    InvalidKind::WrongType,
                    format!("expected a JSON object, found {}", type_name(&other)),
                )
                .for_problem(Some(&id))
                .into())
            }
        },
        None => None,
    };
    let starter_code = read_optional(&dir.join("starter_code.py"))?.unwrap_or_default();
    Ok(Problem {
        id,
        source: Source::Apps,
        split: split.map(str::to_owned),
        question,
        starter_code,
        difficulty,
        tests: Tests::Io(io),
        solutions,
    })
}

fn folder_record<'a>(file: &'a Path, id: &str, obj: &'a Map<String, Value>) -> Record<'a> {
    let mut rec = Record::new(file, None, obj);
    rec.id = Some(id.to_owned());
    rec
}

fn read_required(path: &Path, id: &str) -> Result<String, DataError> {
    read_optional(path)?.ok_or_else(|| {
        Invalid::new(
            path,
            InvalidKind::MissingField,
            "missing file (every problem folder needs question.txt and input_output.json)",
        )
        .for_problem(Some(id))
        .into()
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, DataError> {
    if !path.exists() {
        return Ok(None);
    }
    read_text(path).map(Some)
}

fn parse_file_json(path: &Path, id: &str, text: &str) -> Result<Value, Invalid> {
    serde_json::from_str(text).map_err(|e| {
        Invalid::new(
            path,
            InvalidKind::MalformedJson,
            format!("malformed JSON: {e}"),
        )
        .for_problem(Some(id))
    })
}
