//! APPS parity: every verdict the reference harness gave in `fixtures/apps-golden/cases.jsonl`
//! (678 programs: probes of every quirk, gold solutions and mutants) is reproduced exactly.

mod common;

use codeplan_exec::judge::{JudgeKind, JudgeLimits};
use serde_json::Value;

#[test]
fn reproduces_every_reference_verdict() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apps-golden/cases.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("golden cases");
    let cases: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect();
    assert_eq!(cases.len(), 678);
    let items = cases
        .iter()
        .map(|c| {
            let io: Value = serde_json::from_str(c["input_output"].as_str().unwrap()).unwrap();
            let p = common::io_problem(c["case_id"].as_str().unwrap(), &io);
            (p, c["code"].as_str().unwrap().to_owned())
        })
        .collect();
    let pool = common::pool(2);
    let verdicts = common::judge(&pool, JudgeKind::Apps, JudgeLimits::default(), items);
    let mut mismatches = Vec::new();
    for (case, v) in cases.iter().zip(&verdicts) {
        let got = Value::Array(v.apps_result.clone().expect("apps result"));
        if got != case["expected"] {
            mismatches.push(format!(
                "{}: expected {} got {} ({:?}; {})",
                case["case_id"],
                case["expected"],
                got,
                v.status,
                v.stderr_tail.chars().take(300).collect::<String>()
            ));
        }
        let global = case["global_timeout"].as_bool().unwrap();
        if global && case["no_result_cause"].as_str() == Some("killed_after_join_timeout") {
            assert_eq!(
                v.no_result_cause.as_deref(),
                Some("killed_after_join_timeout"),
                "{}",
                case["case_id"]
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} verdicts differ from the reference:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
