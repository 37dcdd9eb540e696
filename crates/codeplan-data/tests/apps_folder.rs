//! The original APPS folder layout: `<split>/<id>/question.txt`, `input_output.json`, ...

use std::path::Path;

use codeplan_data::*;
use serde_json::json;

/// Creates one APPS problem folder under `split_dir`.
fn problem_folder(split_dir: &Path, name: &str, files: &[(&str, String)]) {
    let dir = split_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
}

fn minimal(q: &str) -> Vec<(&'static str, String)> {
    vec![
        ("question.txt", q.to_owned()),
        (
            "input_output.json",
            json!({"inputs": ["1\n"], "outputs": ["1\n"]}).to_string(),
        ),
    ]
}

#[test]
fn apps_folder_layout() {
    let root = tempfile::tempdir().unwrap();
    let test = root.path().join("test");
    let mut full = minimal("Full problem");
    full.extend([
        (
            "solutions.json",
            json!(["print(1)", "print(2)"]).to_string(),
        ),
        (
            "metadata.json",
            json!({"difficulty": "competition", "url": "u"}).to_string(),
        ),
        ("starter_code.py", "def f():\n".to_owned()),
    ]);
    problem_folder(&test, "0042", &minimal("Forty-two"));
    problem_folder(&test, "3000", &full);
    problem_folder(&test, "0007", &minimal("Seven"));
    std::fs::write(test.join("README.txt"), "not a problem").unwrap();

    for path in [test.clone(), root.path().to_path_buf()] {
        let loaded = load_problems(&path, &LoadOptions::default()).unwrap();
        let ids: Vec<&str> = loaded.problems.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["7", "42", "3000"],
            "sorted by number, leading zeros dropped"
        );
        let p = &loaded.problems[2];
        assert_eq!(p.split.as_deref(), Some("test"));
        assert_eq!(p.question, "Full problem");
        assert_eq!(p.solutions, ["print(1)", "print(2)"]);
        assert_eq!(p.difficulty.as_deref(), Some("competition"));
        assert_eq!(p.starter_code, "def f():\n");
        assert_eq!(p.test_count(), 1);
        assert_eq!(loaded.problems[0].difficulty, None);
        assert!(loaded.problems[0].solutions.is_empty());
    }

    // A parent holding train/ and test/ with the same ids cannot be loaded as one set.
    problem_folder(&root.path().join("train"), "42", &minimal("Train 42"));
    let err = load_problems(root.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::DuplicateProblems(_)), "{err}");
    assert!(err.to_string().contains("`42`"), "{err}");
}

#[test]
fn apps_folder_errors_name_the_file_inside() {
    let root = tempfile::tempdir().unwrap();
    let split = root.path().join("train");
    problem_folder(&split, "0001", &minimal("fine"));
    problem_folder(&split, "0042", &[("question.txt", "no tests".to_owned())]);
    let err = load_problems(&split, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train/0042/input_output.json: problem `42`: missing file"),
        "{err}"
    );

    std::fs::write(
        split.join("0042/input_output.json"),
        "{\"inputs\": [\"1\"], \"outputs\": []}",
    )
    .unwrap();
    let err = load_problems(&split, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0042/input_output.json: problem `42`: field `input_output`: `inputs` has 1"),
        "{err}"
    );

    std::fs::write(
        split.join("0042/input_output.json"),
        json!({"inputs": ["1"], "outputs": ["1"]}).to_string(),
    )
    .unwrap();
    std::fs::write(split.join("0042/solutions.json"), "[\"x\"").unwrap();
    let err = load_problems(&split, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0042/solutions.json: problem `42`: malformed JSON"),
        "{err}"
    );

    std::fs::write(split.join("0042/solutions.json"), "[]").unwrap();
    std::fs::write(
        split.join("0042/metadata.json"),
        json!({"difficulty": 2}).to_string(),
    )
    .unwrap();
    let err = load_problems(&split, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "0042/metadata.json: problem `42`: field `difficulty`: expected a string, found number"
        ),
        "{err}"
    );
    std::fs::remove_file(split.join("0042/metadata.json")).unwrap();

    // Folders that are not problem numbers, and a number given twice, are reported (or skipped).
    std::fs::create_dir_all(split.join("extra")).unwrap();
    problem_folder(&split, "42", &minimal("again"));
    let err = load_problems(&split, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("extra: folder name is not a problem number"),
        "{err}"
    );
    let loaded = load_problems(
        &split,
        &LoadOptions {
            skip_invalid: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        loaded
            .problems
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["1", "42"]
    );
    assert_eq!(loaded.skipped.len(), 2, "{:?}", loaded.skipped);
    assert!(loaded.skipped[0].reason.contains("not a problem number"));
    assert_eq!(loaded.skipped[1].problem_id.as_deref(), Some("42"));
    assert!(loaded.skipped[1]
        .reason
        .contains("problem 42 is also in folder"));

    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = load_problems(&empty, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no problem folders found"), "{err}");
}
