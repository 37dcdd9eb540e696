//! The bundled benchmark files in `data/` load with the counts and contents recorded in data/README.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use codeplan_data::*;
use serde_json::json;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

fn load(rel: &str) -> Vec<Problem> {
    let loaded = load_problems(&data(rel), &LoadOptions::default()).unwrap();
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    loaded.problems
}

fn io(p: &Problem) -> &IoTests {
    match &p.tests {
        Tests::Io(io) => io,
        other => panic!("expected io tests, got {other:?}"),
    }
}

fn check(p: &Problem) -> &CheckTests {
    match &p.tests {
        Tests::Check(c) => c,
        other => panic!("expected check tests, got {other:?}"),
    }
}

#[test]
fn apps_train_counts() {
    let ps = load("apps/train.jsonl");
    assert_eq!(ps.len(), 154);
    let mut by_level = BTreeMap::new();
    for p in &ps {
        *by_level.entry(p.difficulty_label().to_owned()).or_insert(0) += 1;
        assert_eq!(p.source, Source::Apps);
        assert_eq!(p.split.as_deref(), Some("train"));
    }
    assert_eq!(
        by_level,
        BTreeMap::from([
            ("competition".to_owned(), 51),
            ("interview".to_owned(), 52),
            ("introductory".to_owned(), 51)
        ])
    );
    assert_eq!(ps.iter().filter(|p| io(p).is_call_based()).count(), 13);
    assert_eq!(ps.iter().map(Problem::test_count).sum::<usize>(), 972);
    assert_eq!(ps.iter().map(|p| p.solutions.len()).sum::<usize>(), 2351);
    // File order is kept.
    assert_eq!(ps[0].id, "0");
    assert_eq!(ps.last().unwrap().id, "4184");
}

#[test]
fn apps_train_specific_problems() {
    let ps = load("apps/train.jsonl");
    let p0 = &ps[0];
    assert!(p0
        .question
        .starts_with("Polycarp has $n$ different binary words."));
    assert_eq!(p0.difficulty.as_deref(), Some("interview"));
    assert_eq!(p0.starter_code, "");
    assert_eq!(p0.solutions.len(), 5);
    assert!(p0.solutions[0].starts_with("for _ in range(int(input())):\n"));
    let t = io(p0);
    assert_eq!(t.fn_name, None);
    assert_eq!(t.inputs.len(), 1);
    assert!(t.inputs[0]
        .as_str()
        .unwrap()
        .starts_with("4\n4\n0001\n1000\n"));
    assert!(t.outputs[0]
        .as_str()
        .unwrap()
        .starts_with("1\n3\n-1\n0\n\n2\n1 2\n"));

    // Call-based tests keep argument lists and expected values as raw JSON.
    let prime = ps.iter().find(|p| p.id == "4184").unwrap();
    assert_eq!(prime.starter_code, "def is_prime(n):\n\t");
    let t = io(prime);
    assert_eq!(t.fn_name.as_deref(), Some("is_prime"));
    assert_eq!(t.inputs.len(), 8);
    assert_eq!(t.inputs[..3], [json!([1]), json!([2]), json!([5])]);
    assert_eq!(
        t.outputs[..3],
        [json!([false]), json!([true]), json!([true])]
    );

    let kth = ps.iter().find(|p| p.id == "2404").unwrap();
    assert_eq!(io(kth).fn_name.as_deref(), Some("findKthPositive"));
    assert_eq!(io(kth).inputs, [json!([[2, 3, 4, 7, 11], 5])]);
    assert_eq!(io(kth).outputs, [json!(9)]);
    assert!(kth.starter_code.starts_with("class Solution:\n"));
}

#[test]
fn apps_test_split() {
    let ps = load("apps/test.jsonl");
    let ids: Vec<&str> = ps.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "4787", "4790", "4820"]);
    assert!(ps.iter().all(|p| p.split.as_deref() == Some("test")));
    let counts: Vec<usize> = ps.iter().map(Problem::test_count).collect();
    assert_eq!(counts, [565, 278, 271, 259, 254, 3, 3, 3]);
    let sols: Vec<usize> = ps.iter().map(|p| p.solutions.len()).collect();
    assert_eq!(sols, [25, 25, 24, 23, 25, 0, 0, 0]);
    let p = &ps[5];
    assert_eq!(p.difficulty.as_deref(), Some("introductory"));
    assert!(p
        .question
        .starts_with("Seven Wonders is a card drafting game"));
    assert_eq!(io(p).inputs[0], json!("TCGTTC\n"));
    assert_eq!(io(p).outputs[0], json!("21\n"));
}

#[test]
fn humaneval_gz() {
    let ps = load("humaneval/HumanEval.jsonl.gz");
    assert_eq!(ps.len(), 164);
    let p = &ps[0];
    assert_eq!(p.id, "HumanEval/0");
    assert_eq!(p.source, Source::HumanEval);
    assert_eq!(p.split, None);
    assert_eq!(p.difficulty, None);
    assert_eq!(p.difficulty_label(), "unrated");
    assert_eq!(p.question, p.starter_code);
    assert!(p
        .starter_code
        .starts_with("from typing import List\n\n\ndef has_close_elements("));
    assert_eq!(check(p).entry_point, "has_close_elements");
    assert!(check(p).test.contains("def check(candidate):"));
    assert_eq!(p.solutions.len(), 1);
    assert!(p.solutions[0].starts_with(&p.starter_code));
    assert!(p.solutions[0].ends_with("    return False\n"));
    assert_eq!(ps[163].id, "HumanEval/163");
    assert!(ps
        .iter()
        .all(|p| p.test_count() == 1 && p.solutions.len() == 1));
}

#[test]
fn mbpp_is_detected_and_reindented() {
    let ps = load("mbpp/mbpp_sanitized.jsonl");
    assert_eq!(ps.len(), 427);
    assert!(ps.iter().all(|p| p.source == Source::Mbpp));
    let p = &ps[0];
    assert_eq!(p.id, "MbppEval/2");
    assert_eq!(check(p).entry_point, "similar_elements");
    // The canonical body is indented by 2 in the file; it must continue the 4-space docstring.
    assert_eq!(
        p.solutions[0],
        "def similar_elements(test_tup1, test_tup2):\n    '''\n    Write a function to find the \
         shared elements from the given two lists.\n    '''\n    res = tuple(set(test_tup1) & \
         set(test_tup2))\n    return (res) \n"
    );
    // MbppEval/6: a 4-space body followed by a helper function at top level stays as it is.
    let p6 = ps.iter().find(|p| p.id == "MbppEval/6").unwrap();
    assert!(p6.solutions[0].ends_with(
        "    '''\n    return x and (not(x & (x - 1))) \ndef differ_At_One_Bit_Pos(a,b): \n    return is_Power_Of_Two(a ^ b)\n"
    ));
    // MbppEval/20: a tab-indented body becomes spaces.
    let p20 = ps.iter().find(|p| p.id == "MbppEval/20").unwrap();
    assert!(p20.solutions[0].contains("    '''\n    if (x % 2 == 0): \n            return False\n"));
    assert!(!p20.solutions[0].contains('\t'));
}

#[test]
fn explicit_format_and_bad_format_name() {
    // Reading MBPP as HumanEval skips the re-indent (the caller asked for it).
    let opts = LoadOptions {
        format: "HumanEval".parse().unwrap(),
        ..Default::default()
    };
    let ps = load_problems(&data("mbpp/mbpp_sanitized.jsonl"), &opts)
        .unwrap()
        .problems;
    assert_eq!(ps[0].source, Source::HumanEval);
    assert!(ps[0].solutions[0]
        .ends_with("'''\n  res = tuple(set(test_tup1) & set(test_tup2))\n  return (res) \n"));
    assert_eq!("mbpp".parse::<Format>().unwrap(), Format::Mbpp);
    assert_eq!(Format::Apps.to_string(), "apps");
    let err = "jsonl".parse::<Format>().unwrap_err().to_string();
    assert!(
        err.contains("`jsonl`") && err.contains("auto, apps, humaneval, mbpp"),
        "{err}"
    );
}

#[test]
fn merging_sources_rejects_duplicate_ids() {
    let merged = load_all(
        &[
            data("apps/train.jsonl"),
            data("humaneval/HumanEval.jsonl.gz"),
        ],
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(merged.problems.len(), 154 + 164);

    // APPS train and test reuse ids 0-4: the error names each clash and both files.
    let err = load_all(
        &[data("apps/train.jsonl"), data("apps/test.jsonl")],
        &LoadOptions::default(),
    )
    .unwrap_err();
    let DataError::DuplicateProblems(dups) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        dups.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );
    let msg = err.to_string();
    assert!(msg.contains("5 problem id(s)"), "{msg}");
    assert!(
        msg.contains("train.jsonl") && msg.contains("test.jsonl"),
        "{msg}"
    );
}

#[test]
fn selection_on_real_data() {
    let ps = load("apps/train.jsonl");
    let sel = Selection {
        difficulties: Some(vec!["competition".into(), "introductory".into()]),
        limit: Some(60),
        ..Default::default()
    };
    let kept = sel.apply(ps.clone()).unwrap();
    assert_eq!(kept.len(), 60);
    assert!(kept.iter().all(|p| p.difficulty_label() != "interview"));
    // Order is the file's: ids increase.
    let nums: Vec<u64> = kept.iter().map(|p| p.id.parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]));

    let sel = Selection {
        ids: Some(vec!["4184".into(), "0".into(), "2404".into()]),
        ..Default::default()
    };
    let kept = sel.apply(ps.clone()).unwrap();
    assert_eq!(
        kept.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["0", "2404", "4184"]
    );

    let sel = Selection {
        ids: Some(vec!["0".into(), "99999".into(), "HumanEval/0".into()]),
        ..Default::default()
    };
    let err = sel.apply(ps.clone()).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown problem id(s) in the selection: `99999`, `HumanEval/0`"
    );

    let sel = Selection {
        difficulties: Some(vec!["hard".into(), "interview".into()]),
        ..Default::default()
    };
    let err = sel.apply(ps.clone()).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown difficulty name(s) `hard`; valid names: `competition`, `interview`, `introductory`"
    );

    // HumanEval has no levels: its label is `unrated`, valid once such problems are loaded.
    let he = load("humaneval/HumanEval.jsonl.gz");
    let sel = Selection {
        difficulties: Some(vec!["unrated".into()]),
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(sel.apply(he).unwrap().len(), 3);
    assert!(Selection::default().is_all());
    assert_eq!(Selection::default().apply(ps).unwrap().len(), 154);
}

#[test]
fn reference_solutions_as_samples() {
    let ps = load("apps/train.jsonl");
    assert_eq!(solutions_as_samples(&ps, None).len(), 2351);
    let first = solutions_as_samples(&ps, Some(1));
    assert_eq!(
        first.len(),
        ps.iter().filter(|p| !p.solutions.is_empty()).count()
    );
    assert_eq!(first[0].problem_id, "0");
    assert_eq!(first[0].sample_idx, 0);
    assert_eq!(first[0].code, ps[0].solutions[0]);
    let three = solutions_as_samples(&ps[..1], Some(3));
    assert_eq!(
        three.iter().map(|s| s.sample_idx).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}
