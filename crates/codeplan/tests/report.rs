//! `codeplan report compare` end to end: two real report.json files, and a broken one.

// The report crate's fixtures write verdicts with codeplan-exec's own types; sharing the file
// keeps one definition of "what codeplan writes".
#[path = "../../codeplan-report/tests/common/mod.rs"]
mod fixtures;

use std::path::Path;
use std::process::{Command, Output};

use fixtures::{input, passes, problem, variant, O};

fn codeplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(args)
        .output()
        .expect("codeplan runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A finished run in `dir`: report.json of a baseline and a codeplan variant, where codeplan
/// passes `c_on_b` of 2 samples of problem "p2".
fn run_folder(dir: &Path, c_on_b: usize) {
    let eval = vec![
        problem("p1", Some("introductory"), "Print the sum of two numbers."),
        problem(
            "p2",
            Some("interview"),
            "Sort the array and print the median.",
        ),
    ];
    let base = variant(
        dir,
        "baseline",
        true,
        &[("p1", passes(1, 2)), ("p2", vec![O::F, O::F])],
    );
    let plan = variant(
        dir,
        "codeplan",
        false,
        &[("p1", passes(2, 2)), ("p2", passes(c_on_b, 2))],
    );
    let report = codeplan_report::build(&input(eval, vec![base, plan])).unwrap();
    codeplan_report::write(&report, dir).unwrap();
}

#[test]
fn compare_lists_the_problems_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_folder(&a, 0);
    run_folder(&b, 2);
    let out_md = dir.path().join("compare.md");
    let o = codeplan(&[
        "report",
        "compare",
        a.to_str().unwrap(),
        b.join("report.json").to_str().unwrap(),
        "--out",
        out_md.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{}\n{stdout}", text(&o.stderr));
    assert!(
        stdout.contains("| p2 | interview | 0/2 | 2/2 | 0, 1 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("**codeplan**: 1 problems changed, 1 identical."),
        "{stdout}"
    );
    assert!(stdout.contains("**baseline**: no change"), "{stdout}");
    // pass@1 of codeplan: 50% in a, 100% in b.
    assert!(
        stdout.contains("| 50.00% | 100.00% | +50.00 pp |"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&out_md).unwrap(), stdout);
}

#[test]
fn compare_names_a_missing_or_malformed_report() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    run_folder(&good, 1);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("report.json"), "{\"title\": \"cut off").unwrap();
    let o = codeplan(&[
        "report",
        "compare",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&bad.join("report.json").display().to_string()),
        "{err}"
    );
    assert!(err.contains("not a codeplan report.json"), "{err}");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = codeplan(&[
        "report",
        "compare",
        empty.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no report.json in this run folder")
            && err.contains(&empty.display().to_string()),
        "{err}"
    );

    let missing = dir.path().join("nowhere/report.json");
    let o = codeplan(&[
        "report",
        "compare",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains(&missing.display().to_string()));
}

#[test]
fn help_shows_examples() {
    let o = codeplan(&["report", "compare", "--help"]);
    assert!(o.status.success());
    let help = text(&o.stdout);
    assert!(
        help.contains("codeplan report compare runs/exp-seed0 runs/exp-seed1"),
        "{help}"
    );
    assert!(help.contains("RUN_A") && help.contains("--out"));
}
