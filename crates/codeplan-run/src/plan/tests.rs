//! Keys, sharing and wiring of the stage plan.

use super::*;
use std::path::Path;

/// An experiment over a one-line data file and a stand-in student file, in `dir`.
fn experiment(dir: &Path, extra: &str, overrides: &[&str]) -> Experiment {
    std::fs::write(dir.join("train.jsonl"), "{}\n").unwrap();
    std::fs::write(dir.join("eval.jsonl"), "{}\n").unwrap();
    std::fs::write(dir.join("student.gguf"), b"GGUF\x03\0\0\0 stand-in").unwrap();
    let text = format!(
        r#"
name = "t"
out = "{out}"
[train_data]
data = ["{d}/train.jsonl"]
[eval_data]
data = ["{d}/eval.jsonl"]
[teacher]
teacher_url = "http://127.0.0.1:9/v1"
teacher_model = "big"
concurrency = 2
[student]
model = "{d}/student.gguf"
max_steps = 3
[generate]
n = 2
{extra}
"#,
        d = dir.display(),
        out = dir.join("run").display()
    );
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Experiment::parse(&text, Path::new("exp.toml"), &o).unwrap()
}

fn keys(plan: &Plan, kind: StageKind) -> Vec<String> {
    plan.stages
        .iter()
        .filter(|s| s.kind == kind)
        .map(|s| s.key.clone())
        .collect()
}

#[test]
fn stages_are_ordered_shared_and_wired() {
    let dir = tempfile::tempdir().unwrap();
    let e = experiment(dir.path(), "", &[]);
    let plan = plan(&e, &mut FileHashes::default()).unwrap();
    let kinds: Vec<StageKind> = plan.stages.iter().map(|s| s.kind).collect();
    use StageKind::*;
    assert_eq!(
        kinds,
        [Distill, Train, Train, Generate, Generate, Eval, Eval]
    );
    let codeplan = &plan.variants[1];
    let train = &plan.stages[codeplan.train];
    assert_eq!(train.needs, [codeplan.distill.unwrap()]);
    assert!(train.config["plans"]
        .as_str()
        .unwrap()
        .ends_with("plans.jsonl"));
    let generate = &plan.stages[codeplan.generate];
    assert!(generate.config["model"]
        .as_str()
        .unwrap()
        .ends_with("model-q8_0.gguf"));
    assert!(train.config["export"]
        .as_array()
        .unwrap()
        .contains(&"gguf_q8_0".into()));
    assert!(
        plan.variants[0].distill.is_none(),
        "the baseline needs no teacher"
    );
    assert!(plan.stages.iter().all(|s| s.dir.starts_with(&plan.out)));
}

#[test]
fn a_student_change_keeps_the_teacher_stage() {
    let dir = tempfile::tempdir().unwrap();
    let a = plan(&experiment(dir.path(), "", &[]), &mut FileHashes::default()).unwrap();
    let b = plan(
        &experiment(dir.path(), "", &["student.max_steps=4"]),
        &mut FileHashes::default(),
    )
    .unwrap();
    assert_eq!(keys(&a, StageKind::Distill), keys(&b, StageKind::Distill));
    for kind in [StageKind::Train, StageKind::Generate, StageKind::Eval] {
        let (ka, kb) = (keys(&a, kind), keys(&b, kind));
        assert!(ka.iter().all(|k| !kb.contains(k)), "{kind:?} kept a key");
    }
    // Operational settings change no key.
    let c = plan(
        &experiment(
            dir.path(),
            "",
            &["teacher.concurrency=9", "student.save_every=1"],
        ),
        &mut FileHashes::default(),
    )
    .unwrap();
    for kind in [StageKind::Distill, StageKind::Train, StageKind::Eval] {
        assert_eq!(keys(&a, kind), keys(&c, kind));
    }
    // A changed data file changes every stage that reads it.
    let e = experiment(dir.path(), "", &[]);
    std::fs::write(dir.path().join("eval.jsonl"), "{\"x\": 1}\n").unwrap();
    let d = plan(&e, &mut FileHashes::default()).unwrap();
    assert_eq!(keys(&a, StageKind::Train), keys(&d, StageKind::Train));
    assert_ne!(keys(&a, StageKind::Generate), keys(&d, StageKind::Generate));
}

#[test]
fn variants_share_identical_work() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[variant]]
name = "base"
baseline = true
ablation = "code-only"
[[variant]]
name = "k1"
ablation = "one-plan"
[[variant]]
name = "k1-again"
teacher = { plans_per_problem = 1 }
[[variant]]
name = "forward"
ablation = "forward-plans"
"#;
    let plan = plan(
        &experiment(dir.path(), extra, &[]),
        &mut FileHashes::default(),
    )
    .unwrap();
    let distills: Vec<&Stage> = plan
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Distill)
        .collect();
    assert_eq!(
        distills.len(),
        2,
        "one-plan and its twin share a teacher stage"
    );
    assert_eq!(distills[0].variants, ["k1", "k1-again"]);
    assert_eq!(plan.variants[1].eval, plan.variants[2].eval);
}

#[test]
fn missing_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = experiment(dir.path(), "", &["eval_data.data=[\"nope.jsonl\"]"]);
    let err = plan(&e, &mut FileHashes::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[eval_data]") && err.contains("nope.jsonl"),
        "{err}"
    );
    let e = experiment(dir.path(), "", &["student.model=\"missing.gguf\""]);
    assert!(plan(&e, &mut FileHashes::default())
        .unwrap_err()
        .to_string()
        .contains("missing.gguf"));
}
