//! Samples files: both line styles, code extraction, errors, `skip_invalid`, and writing.

use std::path::{Path, PathBuf};

use codeplan_data::*;
use serde_json::json;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

/// APPS test (ids 0-4, 4787, ...) plus HumanEval: both kinds of problem in one set.
fn problems() -> Vec<Problem> {
    load_all(
        &[
            data("apps/test.jsonl"),
            data("humaneval/HumanEval.jsonl.gz"),
        ],
        &LoadOptions::default(),
    )
    .unwrap()
    .problems
}

fn write(dir: &Path, lines: &[serde_json::Value]) -> PathBuf {
    let path = dir.join("samples.jsonl");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

fn read(lines: &[serde_json::Value], opts: &SampleOptions) -> Result<LoadedSamples, DataError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), lines);
    read_samples(&path, &problems(), opts)
}

fn error(lines: &[serde_json::Value]) -> String {
    let err = read(lines, &SampleOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("samples.jsonl:"), "{text}");
    text
}

#[test]
fn problem_id_style_with_and_without_indices() {
    let loaded = read(
        &[
            json!({"problem_id": 4787, "code": "print(1)"}),
            json!({"problem_id": "0", "sample_idx": 5, "code": "print(2)"}),
            json!({"problem_id": "4787", "code": "print(3)"}),
            json!({"problem_id": 0, "code": "print(4)"}),
        ],
        &SampleOptions::default(),
    )
    .unwrap();
    let got: Vec<(&str, usize, &str)> = loaded
        .samples
        .iter()
        .map(|s| (s.problem_id.as_str(), s.sample_idx, s.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("4787", 0, "print(1)"),
            ("0", 5, "print(2)"),
            ("4787", 1, "print(3)"),
            ("0", 1, "print(4)")
        ]
    );
    assert!(loaded.skipped.is_empty());
}

#[test]
fn human_eval_style_prepends_the_prompt_only_for_humaneval_problems() {
    let ps = problems();
    let he0 = ps.iter().find(|p| p.id == "HumanEval/0").unwrap();
    let loaded = read(
        &[
            json!({"task_id": "HumanEval/0", "completion": "    return True\n"}),
            json!({"task_id": "HumanEval/0", "completion": "    return False\n"}),
            json!({"task_id": 4790, "completion": "print(0)"}),
        ],
        &SampleOptions::default(),
    )
    .unwrap();
    let s = &loaded.samples;
    assert_eq!(s[0].code, format!("{}    return True\n", he0.starter_code));
    assert_eq!(
        (s[1].problem_id.as_str(), s[1].sample_idx),
        ("HumanEval/0", 1)
    );
    assert_eq!(
        (s[2].problem_id.as_str(), s[2].code.as_str()),
        ("4790", "print(0)")
    );
}

#[test]
fn fenced_extraction_applies_to_both_styles() {
    let opts = SampleOptions {
        extract: CodeExtraction::Fenced,
        ..Default::default()
    };
    let loaded = read(
        &[
            json!({"problem_id": 1, "code": "Sure!\n```python\nprint(input())\n```\nHope it helps."}),
            json!({"problem_id": 1, "code": "print(2)\n"}),
            json!({"task_id": "HumanEval/2", "completion": "```\n    return number % 1.0\n```"}),
        ],
        &opts,
    )
    .unwrap();
    assert_eq!(loaded.samples[0].code, "print(input())\n");
    assert_eq!(loaded.samples[1].code, "print(2)\n");
    assert!(loaded.samples[2]
        .code
        .ends_with("\"\"\"\n    return number % 1.0\n"));
}

#[test]
fn unknown_problem_and_duplicates() {
    let err = error(&[
        json!({"problem_id": 1, "code": ""}),
        json!({"problem_id": 99, "code": ""}),
    ]);
    assert!(
        err.ends_with(
            "samples.jsonl:2: problem `99`: field `problem_id`: no loaded problem has this id"
        ),
        "{err}"
    );
    let err = error(&[json!({"task_id": "HumanEval/999", "completion": ""})]);
    assert!(err.ends_with("samples.jsonl:1: problem `HumanEval/999`: field `task_id`: no loaded problem has this id"), "{err}");

    let err = error(&[
        json!({"problem_id": 1, "sample_idx": 0, "code": "a"}),
        json!({"problem_id": 2, "sample_idx": 0, "code": "b"}),
        json!({"problem_id": "1", "sample_idx": 0, "code": "c"}),
    ]);
    assert!(
        err.ends_with("samples.jsonl:3: problem `1`: field `sample_idx`: sample 0 of this problem appears twice: at line 1 and at line 3"),
        "{err}"
    );
    // An implicit index can collide with an explicit one too; that is reported the same way.
    let err = error(&[
        json!({"problem_id": 1, "sample_idx": 1, "code": "a"}),
        json!({"problem_id": 1, "code": "b"}),
    ]);
    assert!(err.contains("samples.jsonl:2: problem `1`: field `sample_idx`: sample 1 of this problem appears twice"), "{err}");
}

#[test]
fn missing_and_wrongly_typed_fields() {
    let err = error(&[json!({"problem_id": 1})]);
    assert!(
        err.ends_with("samples.jsonl:1: problem `1`: field `code`: missing field"),
        "{err}"
    );
    let err = error(&[json!({"task_id": "HumanEval/1", "code": "x"})]);
    assert!(
        err.ends_with("samples.jsonl:1: problem `HumanEval/1`: field `completion`: missing field"),
        "{err}"
    );
    let err = error(&[json!({"problem_id": 1, "code": 5})]);
    assert!(
        err.ends_with(
            "samples.jsonl:1: problem `1`: field `code`: expected a string, found number"
        ),
        "{err}"
    );
    let err = error(&[json!({"problem_id": 1, "sample_idx": "0", "code": ""})]);
    assert!(
        err.ends_with("field `sample_idx`: expected a non-negative integer, found string"),
        "{err}"
    );
    let err = error(&[json!({"problem_id": 1, "sample_idx": -1, "code": ""})]);
    assert!(
        err.ends_with("field `sample_idx`: expected a non-negative integer, found -1"),
        "{err}"
    );
    let err = error(&[json!({"problem_id": [1], "code": ""})]);
    assert!(
        err.ends_with(
            "samples.jsonl:1: field `problem_id`: expected a string or an integer, found array"
        ),
        "{err}"
    );
    let err = error(&[json!({"program": "print(1)"})]);
    assert!(
        err.contains("samples.jsonl:1: field `problem_id`: missing field (a sample line is"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    std::fs::write(
        &path,
        "{\"problem_id\": 1, \"code\": \"\"}\n{\"problem_id\": 1, \"code\": \n",
    )
    .unwrap();
    let err = read_samples(&path, &problems(), &SampleOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("samples.jsonl:2: malformed JSON"), "{err}");
    std::fs::write(&path, "\n\n").unwrap();
    let err = read_samples(&path, &problems(), &SampleOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("samples.jsonl: empty file: no samples"),
        "{err}"
    );
}

#[test]
fn skip_invalid_samples() {
    let opts = SampleOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let loaded = read(
        &[
            json!({"problem_id": 1, "code": "a"}),
            json!({"problem_id": 77, "code": "b"}),
            json!({"problem_id": 1, "sample_idx": 0, "code": "c"}),
            json!({"problem_id": 1, "code": 3}),
            json!({"problem_id": 1, "code": "d"}),
        ],
        &opts,
    )
    .unwrap();
    let got: Vec<(usize, &str)> = loaded
        .samples
        .iter()
        .map(|s| (s.sample_idx, s.code.as_str()))
        .collect();
    assert_eq!(got, [(0, "a"), (1, "d")]);
    let lines: Vec<Option<usize>> = loaded.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [Some(2), Some(3), Some(4)]);
    assert_eq!(
        loaded.skipped[0].reason,
        "problem `77`: field `problem_id`: no loaded problem has this id"
    );
    assert!(loaded.skipped[1]
        .reason
        .contains("appears twice: at line 1 and at line 3"));
    assert!(loaded.skipped[2]
        .reason
        .contains("field `code`: expected a string, found number"));
}

#[test]
fn write_then_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ps = problems();
    let samples = solutions_as_samples(&ps, Some(2));
    assert_eq!(samples.len(), 5 * 2 + 164);
    let path = dir.path().join("refs.jsonl");
    write_samples(&path, &samples).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["problem_id"], "0");
    assert_eq!(first["sample_idx"], 0);
    assert_eq!(first["code"], ps[0].solutions[0].as_str());
    let back = read_samples(&path, &ps, &SampleOptions::default()).unwrap();
    assert_eq!(back.samples, samples);
    // Only the target file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let err = write_samples(&dir.path().join("no/such/dir/s.jsonl"), &samples).unwrap_err();
    assert!(err.to_string().contains("s.jsonl: cannot write"), "{err}");
}
