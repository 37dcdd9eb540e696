//! Bad JSONL inputs: every error names file, line, problem id and field; `skip_invalid` lists what it skips.

use std::path::{Path, PathBuf};

use codeplan_data::*;
use serde_json::{json, Value};

/// A valid APPS record (codeparrot schema) with `id`; `edit` may change or remove fields.
fn apps_record(id: u64, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut rec = json!({
        "problem_id": id,
        "question": format!("Question {id}"),
        "solutions": json!(["print(input())"]).to_string(),
        "input_output": json!({"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]}).to_string(),
        "difficulty": "interview",
        "url": "https://example.invalid",
        "starter_code": ""
    });
    edit(rec.as_object_mut().unwrap());
    rec.to_string()
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Loads `lines` as `train.jsonl` and returns the error's details and its text.
fn apps_error(lines: &[String]) -> (Invalid, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "train.jsonl", lines);
    let err = load_problems(&path, &LoadOptions::default()).unwrap_err();
    let inv = err.as_invalid().unwrap_or_else(|| panic!("{err}")).clone();
    let text = err.to_string();
    assert!(text.contains("train.jsonl"), "{text}");
    (inv, text)
}

/// Asserts that the error on line 2 of a two-record file (first record fine, id 7 bad) names
/// file, line, id and field, and says `what`.
fn assert_field_error(
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    field: &str,
    what: &str,
) {
    let (inv, text) = apps_error(&[apps_record(1, |_| {}), apps_record(7, edit)]);
    assert_eq!(inv.line, Some(2), "{text}");
    assert_eq!(inv.problem_id.as_deref(), Some("7"), "{text}");
    assert_eq!(inv.field.as_deref(), Some(field), "{text}");
    assert!(
        text.contains(&format!(
            "train.jsonl:2: problem `7`: field `{field}`: {what}"
        )),
        "{text}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    assert_field_error(
        |r| {
            r.insert("difficulty".into(), json!(3));
        },
        "difficulty",
        "expected a string, found number",
    );
    assert_field_error(
        |r| {
            r.insert("question".into(), json!(["a"]));
        },
        "question",
        "expected a string, found array",
    );
    assert_field_error(
        |r| {
            r.insert("solutions".into(), json!(5));
        },
        "solutions",
        "expected a JSON string holding a list of programs, found number",
    );
}

#[test]
fn missing_fields() {
    assert_field_error(
        |r| {
            r.remove("question");
        },
        "question",
        "missing field",
    );
    assert_field_error(
        |r| {
            r.remove("input_output");
        },
        "input_output",
        "missing field",
    );
    assert_field_error(
        |r| {
            r.insert(
                "input_output".into(),
                json!(json!({"inputs": []}).to_string()),
            );
        },
        "input_output.outputs",
        "missing field",
    );
    // Without an id, the error still names file, line and field.
    let (inv, text) = apps_error(&[apps_record(1, |r| {
        r.remove("problem_id");
    })]);
    assert_eq!((inv.line, inv.problem_id.as_deref()), (Some(1), None));
    assert!(
        text.ends_with("train.jsonl:1: field `problem_id`: missing field"),
        "{text}"
    );
}

#[test]
fn embedded_json_errors() {
    assert_field_error(
        |r| {
            r.insert("solutions".into(), json!("[\"print(1)\""));
        },
        "solutions",
        "the string is not valid JSON: EOF while parsing a list at column 11",
    );
    assert_field_error(
        |r| {
            r.insert("solutions".into(), json!("[\"ok\", 3]"));
        },
        "solutions",
        "solution 1: expected a string (a program), found number",
    );
    assert_field_error(
        |r| {
            r.insert("input_output".into(), json!("{\"inputs\": [1,"));
        },
        "input_output",
        "the string is not valid JSON",
    );
    assert_field_error(
        |r| {
            r.insert("input_output".into(), json!("[1, 2]"));
        },
        "input_output",
        "expected a JSON object {\"inputs\", \"outputs\"}, found array",
    );
    assert_field_error(
        |r| {
            r.insert("input_output".into(), json!(""));
        },
        "input_output",
        "empty string: the problem has no tests",
    );
    assert_field_error(
        |r| {
            let io = json!({"inputs": "1\n", "outputs": ["1\n"]});
            r.insert("input_output".into(), json!(io.to_string()));
        },
        "input_output.inputs",
        "expected a list, found string",
    );
    assert_field_error(
        |r| {
            let io = json!({"inputs": [[1]], "outputs": [[1]], "fn_name": 3});
            r.insert("input_output".into(), json!(io.to_string()));
        },
        "input_output.fn_name",
        "expected a string, found number",
    );
}

#[test]
fn inputs_outputs_length_mismatch() {
    assert_field_error(
        |r| {
            let io = json!({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]});
            r.insert("input_output".into(), json!(io.to_string()));
        },
        "input_output",
        "`inputs` has 2 entries but `outputs` has 1; they must pair up",
    );
    assert_field_error(
        |r| {
            let io = json!({"inputs": [], "outputs": []});
            r.insert("input_output".into(), json!(io.to_string()));
        },
        "input_output",
        "no tests",
    );
}

#[test]
fn empty_and_missing_solutions_mean_none() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        apps_record(1, |r| {
            r.insert("solutions".into(), json!(""));
        }),
        apps_record(2, |r| {
            r.insert("solutions".into(), json!("[]"));
        }),
        apps_record(3, |r| {
            r.remove("solutions");
            r.insert("difficulty".into(), Value::Null);
            r.remove("starter_code");
        }),
        // Already-parsed JSON is accepted as well as JSON text.
        apps_record(4, |r| {
            r.insert("solutions".into(), json!(["a", "b"]));
            r.insert(
                "input_output".into(),
                json!({"inputs": [[1]], "outputs": [[2]], "fn_name": "f"}),
            );
            r.insert("problem_id".into(), json!("custom-4"));
        }),
    ];
    let path = write(dir.path(), "mine.jsonl", &lines);
    let ps = load_problems(&path, &LoadOptions::default())
        .unwrap()
        .problems;
    let sols: Vec<usize> = ps.iter().map(|p| p.solutions.len()).collect();
    assert_eq!(sols, [0, 0, 0, 2]);
    assert_eq!(ps[2].difficulty, None);
    assert_eq!(ps[2].starter_code, "");
    assert_eq!(ps[3].id, "custom-4");
    assert!(
        ps.iter().all(|p| p.split.is_none()),
        "file name is not a split"
    );
    let Tests::Io(io) = &ps[3].tests else {
        panic!()
    };
    assert_eq!(io.fn_name.as_deref(), Some("f"));
}

#[test]
fn malformed_lines_and_bad_ids() {
    let (inv, text) = apps_error(&[apps_record(1, |_| {}), "{\"problem_id\": 2,".into()]);
    assert_eq!((inv.line, inv.kind), (Some(2), InvalidKind::MalformedJson));
    assert!(
        text.contains("train.jsonl:2: malformed JSON: EOF while parsing a value at column 17"),
        "{text}"
    );

    let (inv, text) = apps_error(&["[1, 2]".into()]);
    assert_eq!(inv.line, Some(1));
    assert!(
        text.ends_with("train.jsonl:1: expected a JSON object, found array"),
        "{text}"
    );

    for (id, what) in [
        (
            json!(-3),
            "expected a non-negative integer or a string, found number -3",
        ),
        (
            json!(1.5),
            "expected a non-negative integer or a string, found number 1.5",
        ),
        (
            json!(true),
            "expected a string or an integer, found boolean",
        ),
        (json!(""), "the id is an empty string"),
    ] {
        let (_, text) = apps_error(&[apps_record(1, |r| {
            r.insert("problem_id".into(), id);
        })]);
        assert!(
            text.ends_with(&format!("train.jsonl:1: field `problem_id`: {what}")),
            "{text}"
        );
    }

    let (inv, text) = apps_error(&[
        apps_record(5, |_| {}),
        apps_record(6, |_| {}),
        apps_record(5, |_| {}),
    ]);
    assert_eq!((inv.line, inv.kind), (Some(3), InvalidKind::Duplicate));
    assert!(
        text.ends_with(
            "train.jsonl:3: problem `5`: duplicate problem id: already defined at line 1"
        ),
        "{text}"
    );
}

#[test]
fn empty_file_and_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.jsonl", &["".into(), "  ".into()]);
    let err = load_problems(&path, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.as_invalid().unwrap().kind, InvalidKind::EmptyFile);
    assert!(
        err.to_string()
            .ends_with("empty.jsonl: empty file: no records"),
        "{err}"
    );

    let path = write(
        dir.path(),
        "other.jsonl",
        &[json!({"name": "x", "body": 1}).to_string()],
    );
    let err = load_problems(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "other.jsonl:1: cannot tell the data format from the record's fields (body, name)"
        ),
        "{err}"
    );

    // A folder cannot be read as HumanEval.
    let opts = LoadOptions {
        format: Format::HumanEval,
        ..Default::default()
    };
    let err = load_problems(dir.path(), &opts).unwrap_err().to_string();
    assert!(
        err.contains("format `humaneval` needs a JSONL file"),
        "{err}"
    );

    let err = load_problems(&dir.path().join("nope.jsonl"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.jsonl: cannot read"), "{err}");
}

#[test]
fn humaneval_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"task_id": "X/0", "prompt": "def f():\n", "entry_point": "f",
                      "canonical_solution": "    return 1\n", "test": "def check(c): pass"});
    let mut no_entry = good.clone();
    no_entry["task_id"] = json!("X/1");
    no_entry.as_object_mut().unwrap().remove("entry_point");
    let path = write(
        dir.path(),
        "he.jsonl",
        &[good.to_string(), no_entry.to_string()],
    );
    // Detected from line 1; line 2 lacks a field.
    let opts = LoadOptions {
        format: Format::HumanEval,
        ..Default::default()
    };
    let err = load_problems(&path, &opts).unwrap_err().to_string();
    assert!(
        err.ends_with("he.jsonl:2: problem `X/1`: field `entry_point`: missing field"),
        "{err}"
    );

    let mut bad_prompt = good.clone();
    bad_prompt["prompt"] = json!(42);
    let path = write(dir.path(), "he2.jsonl", &[bad_prompt.to_string()]);
    let err = load_problems(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "he2.jsonl:1: problem `X/0`: field `prompt`: expected a string, found number"
        ),
        "{err}"
    );
}

#[test]
fn skip_invalid_lists_every_skipped_record() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "not json".to_owned(),
        apps_record(1, |_| {}),
        apps_record(2, |r| {
            r.insert("difficulty".into(), json!(1));
        }),
        apps_record(3, |_| {}),
        apps_record(4, |r| {
            let io = json!({"inputs": ["1\n"], "outputs": []});
            r.insert("input_output".into(), json!(io.to_string()));
        }),
        apps_record(1, |_| {}),
    ];
    let path = write(dir.path(), "test.jsonl", &lines);
    let opts = LoadOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let loaded = load_problems(&path, &opts).unwrap();
    let ids: Vec<&str> = loaded.problems.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["1", "3"]);
    assert!(loaded
        .problems
        .iter()
        .all(|p| p.split.as_deref() == Some("test")));
    let got: Vec<(Option<usize>, Option<&str>)> = loaded
        .skipped
        .iter()
        .map(|s| (s.line, s.problem_id.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(1), None),
            (Some(3), Some("2")),
            (Some(5), Some("4")),
            (Some(6), Some("1"))
        ]
    );
    assert!(loaded.skipped[0]
        .reason
        .starts_with("malformed JSON: expected ident at column 2"));
    assert_eq!(
        loaded.skipped[1].reason,
        "problem `2`: field `difficulty`: expected a string, found number"
    );
    assert!(loaded.skipped[2]
        .reason
        .contains("`inputs` has 1 entries but `outputs` has 0"));
    assert!(loaded.skipped[3]
        .reason
        .contains("already defined at line 2"));
    assert!(loaded.skipped.iter().all(|s| s.file == path));
    assert!(loaded.skipped[1]
        .to_string()
        .contains("test.jsonl:3: skipped: problem `2`"));

    // Without skip_invalid, the first bad record (the malformed line 1) fails the load.
    let err = load_problems(&path, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("test.jsonl:1: malformed JSON"), "{err}");
}
