//! The experiment file: data, teacher, student, decoding, judging, and the variants to compare.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::error::{Result, RunError};

/// An experiment, as its TOML file spells it (after `--set` overrides).
///
/// The `teacher`, `student`, `generate` and `eval` sections hold the settings of the verbs
/// `codeplan distill`, `train`, `generate` and `eval` under the same names; the CLI checks them
/// against those verbs' own settings, so a misspelt key is named before anything runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// A short name, shown in the report.
    pub name: String,
    /// What the experiment asks, shown in the report.
    #[serde(default)]
    pub description: String,
    /// The run folder [default: `out/<name>`].
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// The training problems: `data`, `format`, `ids`, `difficulty`, `limit`.
    pub train_data: Table,
    /// The evaluation problems, same keys.
    pub eval_data: Table,
    /// `codeplan distill` settings shared by every variant that trains on plans.
    #[serde(default)]
    pub teacher: Table,
    /// `codeplan train` settings shared by every variant.
    pub student: Table,
    /// Which export of each trained student is sampled [default: `gguf-q8_0` for a GGUF
    /// student (quantised, fast), else `hf`].
    #[serde(default)]
    pub student_export: Option<StudentExport>,
    /// `codeplan generate` settings: decoding is identical for every variant.
    #[serde(default)]
    pub generate: Table,
    /// `codeplan eval` settings (judge, limits, k).
    #[serde(default)]
    pub eval: Table,
    /// How the report computes its statistics.
    #[serde(default)]
    pub report: ReportSettings,
    /// The variants to compare [default: the code-only baseline and CodePLAN].
    #[serde(default, rename = "variant")]
    pub variants: Vec<VariantSpec>,
}

/// Report settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Bootstrap resamples for the confidence intervals.
    pub bootstrap_resamples: usize,
    /// Seed of the bootstrap.
    pub bootstrap_seed: u64,
    /// Word n-gram length of the contamination check.
    pub contamination_ngram: usize,
    /// Overlap fraction above which an evaluation problem is flagged.
    pub contamination_threshold: f64,
    /// Side-by-side examples shown.
    pub examples: usize,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            bootstrap_resamples: 10_000,
            bootstrap_seed: 0,
            contamination_ngram: 13,
            contamination_threshold: 0.5,
            examples: 3,
        }
    }
}

/// The export of a trained student that `generate` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StudentExport {
    /// The merged Hugging Face folder (f32).
    #[serde(rename = "hf")]
    Hf,
    /// A GGUF file with 8-bit weights.
    #[serde(rename = "gguf-q8_0", alias = "gguf_q8_0")]
    GgufQ8_0,
    /// A GGUF file with 16-bit weights.
    #[serde(rename = "gguf-f16", alias = "gguf_f16")]
    GgufF16,
}

impl StudentExport {
    /// The name `codeplan train --export` takes.
    pub fn name(self) -> &'static str {
        match self {
            StudentExport::Hf => "hf",
            StudentExport::GgufQ8_0 => "gguf-q8_0",
            StudentExport::GgufF16 => "gguf-f16",
        }
    }

    /// The name in a `codeplan train` settings file (`export = [...]`).
    pub fn config_name(self) -> &'static str {
        match self {
            StudentExport::Hf => "hf",
            StudentExport::GgufQ8_0 => "gguf_q8_0",
            StudentExport::GgufF16 => "gguf_f16",
        }
    }

    /// Where `codeplan train` writes it in its output folder.
    pub fn path(self, train_dir: &Path) -> PathBuf {
        train_dir.join(match self {
            StudentExport::Hf => "model",
            StudentExport::GgufQ8_0 => "model-q8_0.gguf",
            StudentExport::GgufF16 => "model-f16.gguf",
        })
    }
}

/// One variant of the student.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// One line saying what it is [default: from its settings].
    #[serde(default)]
    pub description: Option<String>,
    /// The variant the others are compared with (exactly one).
    #[serde(default)]
    pub baseline: bool,
    /// One of the method's ablations, as shorthand for its settings.
    #[serde(default)]
    pub ablation: Option<Ablation>,
    /// Teacher settings that differ from the shared ones.
    #[serde(default)]
    pub teacher: Table,
    /// Student settings that differ from the shared ones.
    #[serde(default)]
    pub student: Table,
}

/// The ablations of the method's notes, each a change of teacher or student settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    /// Conventional fine-tuning: the code task only (the baseline).
    CodeOnly,
    /// Plans reasoned forward from the statement, not backward from a solution.
    ForwardPlans,
    /// One plan per problem instead of plan sampling.
    OnePlan,
    /// Plans kept without execution validation.
    NoValidation,
    /// The plan task trained through its own copy of the output head.
    PlanHead,
    /// At inference the student writes a plan, then code following it (`generate --prompt
    /// plan-then-code`); decoding settings otherwise unchanged.
    PlanThenCode,
}

impl Ablation {
    /// The (section, key, value) settings this ablation stands for.
    pub fn settings(self) -> (&'static str, &'static str, Value) {
        match self {
            Ablation::CodeOnly => ("student", "tasks", Value::Array(vec!["code".into()])),
            Ablation::ForwardPlans => ("teacher", "reasoning", "forward".into()),
            Ablation::OnePlan => ("teacher", "plans_per_problem", Value::Integer(1)),
            Ablation::NoValidation => ("teacher", "no_validate", Value::Boolean(true)),
            Ablation::PlanHead => ("student", "plan_head", Value::Boolean(true)),
            Ablation::PlanThenCode => ("generate", "prompt", "plan-then-code".into()),
        }
    }
}

/// A variant with its sections resolved: shared settings, then the ablation, then its own.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// Its name.
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// Whether it is the baseline.
    pub baseline: bool,
    /// The teacher's settings (used only when the student trains on plans).
    pub teacher: Table,
    /// The student's settings.
    pub student: Table,
    /// Changes to the shared `[generate]` settings: only an ablation's inference mode (a
    /// variant cannot change decoding itself).
    pub generate: Table,
}

impl Variant {
    /// Whether the student trains on plans (and so needs the teacher).
    pub fn uses_plans(&self) -> bool {
        match self.student.get("tasks") {
            Some(Value::Array(tasks)) => tasks.iter().any(|t| t.as_str() == Some("plan")),
            Some(Value::String(s)) => s.split(',').any(|t| t.trim() == "plan"),
            // `codeplan train`'s default tasks are code and plan.
            _ => true,
        }
    }
}

impl Experiment {
    /// Reads an experiment file, applying `key=value` overrides (see [`apply_override`]) first.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).map_err(|e| RunError::io(path, e))?;
        Self::parse(&text, path, overrides)
    }

    /// Parses an experiment from text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Experiment> {
        let fail = |e: toml::de::Error| RunError::Experiment(format!("{}: {e}", path.display()));
        // Without overrides, read the text directly: errors then point at the line.
        let experiment: Experiment = if overrides.is_empty() {
            toml::from_str(text).map_err(fail)?
        } else {
            let mut doc: Table = toml::from_str(text).map_err(fail)?;
            for o in overrides {
                apply_override(&mut doc, o)?;
            }
            Experiment::deserialize(doc).map_err(fail)?
        };
        experiment.check(path)?;
        Ok(experiment)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |what: String| Err(RunError::Experiment(format!("{}: {what}", path.display())));
        if !valid_name(&self.name) {
            return bad(format!(
                "`name = {:?}`: use letters, digits, `-`, `_` and `.` only",
                self.name
            ));
        }
        let mut seen = BTreeSet::new();
        for v in &self.variants {
            if !valid_name(&v.name) {
                return bad(format!(
                    "variant `{}`: a variant name uses letters, digits, `-`, `_` and `.` only",
                    v.name
                ));
            }
            if !seen.insert(v.name.as_str()) {
                return bad(format!("variant `{}` is defined twice", v.name));
            }
        }
        let baselines = self.variants.iter().filter(|v| v.baseline).count();
        if !self.variants.is_empty() && baselines != 1 {
            return bad(format!(
                "exactly one [[variant]] must have `baseline = true` (found {baselines})"
            ));
        }
        for (section, table) in [
            ("train_data", &self.train_data),
            ("eval_data", &self.eval_data),
        ] {
            match table.get("data") {
                Some(Value::Array(a)) if !a.is_empty() => {}
                Some(Value::String(_)) => {}
                _ => return bad(format!("[{section}] needs `data = [\"path\", ...]`")),
            }
        }
        for (section, table, keys) in [
            (
                "teacher",
                &self.teacher,
                &["data", "out", "format", "ids", "difficulty", "limit"][..],
            ),
            (
                "student",
                &self.student,
                &["data", "out", "plans", "ids", "difficulty", "limit"][..],
            ),
            (
                "generate",
                &self.generate,
                &["data", "out", "model", "ids", "difficulty", "limit"][..],
            ),
            (
                "eval",
                &self.eval,
                &["data", "out", "samples", "ids", "difficulty", "limit"][..],
            ),
        ] {
            for key in keys {
                if table.contains_key(*key) {
                    return bad(format!(
                        "[{section}] `{key}`: the run sets this itself (problems come from [train_data] and [eval_data], outputs go to the run folder)"
                    ));
                }
            }
        }
        for v in &self.variants {
            for (section, table) in [("teacher", &v.teacher), ("student", &v.student)] {
                for key in [
                    "data",
                    "out",
                    "plans",
                    "model",
                    "ids",
                    "difficulty",
                    "limit",
                ] {
                    // A variant may train another student model; everything else is shared.
                    if table.contains_key(key) && !(section == "student" && key == "model") {
                        return bad(format!(
                            "variant `{}`: {section}.{key}: the run sets this itself",
                            v.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The run folder: the file's `out`, else `out/<name>`.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("out").join(&self.name))
    }

    /// The variants with their settings resolved (the default pair when the file names none).
    pub fn variants(&self) -> Vec<Variant> {
        let specs = if self.variants.is_empty() {
            vec![
                VariantSpec {
                    name: "baseline".into(),
                    description: None,
                    baseline: true,
                    ablation: Some(Ablation::CodeOnly),
                    teacher: Table::new(),
                    student: Table::new(),
                },
                VariantSpec {
                    name: "codeplan".into(),
                    description: None,
                    baseline: false,
                    ablation: None,
                    teacher: Table::new(),
                    student: Table::new(),
                },
            ]
        } else {
            self.variants.clone()
        };
        specs
            .into_iter()
            .map(|spec| {
                let mut teacher = self.teacher.clone();
                let mut student = self.student.clone();
                let mut generate = Table::new();
                if let Some(a) = spec.ablation {
                    let (section, key, value) = a.settings();
                    let target = match section {
                        "teacher" => &mut teacher,
                        "student" => &mut student,
                        _ => &mut generate,
                    };
                    target.insert(key.into(), value);
                }
                teacher.extend(spec.teacher);
                student.extend(spec.student);
                let mut variant = Variant {
                    name: spec.name,
                    description: String::new(),
                    baseline: spec.baseline,
                    teacher,
                    student,
                    generate,
                };
                variant.description = spec
                    .description
                    .unwrap_or_else(|| describe(&variant, spec.ablation));
                variant
            })
            .collect()
    }
}

/// A description from a variant's settings, e.g. "code + plan tasks; backward plans, K = 4, validated".
fn describe(v: &Variant, ablation: Option<Ablation>) -> String {
    if !v.uses_plans() {
        return "code task only (conventional fine-tuning)".into();
    }
    let t = &v.teacher;
    let reasoning = t
        .get("reasoning")
        .and_then(Value::as_str)
        .unwrap_or("backward");
    let k = t
        .get("plans_per_problem")
        .and_then(Value::as_integer)
        .unwrap_or(4);
    let validated = if t.get("no_validate").and_then(Value::as_bool) == Some(true) {
        "not validated"
    } else {
        "validated"
    };
    let head = if v.student.get("plan_head").and_then(Value::as_bool) == Some(true) {
        "; separate plan head"
    } else {
        ""
    };
    let inference = if v.generate.get("prompt").and_then(Value::as_str) == Some("plan-then-code") {
        "; plan-then-code inference"
    } else {
        ""
    };
    let tag = match ablation {
        Some(Ablation::CodeOnly) | None => String::new(),
        Some(a) => format!(" [ablation: {}]", ablation_name(a)),
    };
    format!("code + plan tasks; {reasoning} plans, K = {k}, {validated}{head}{inference}{tag}")
}

fn ablation_name(a: Ablation) -> &'static str {
    match a {
        Ablation::CodeOnly => "code-only",
        Ablation::ForwardPlans => "forward-plans",
        Ablation::OnePlan => "one-plan",
        Ablation::NoValidation => "no-validation",
        Ablation::PlanHead => "plan-head",
        Ablation::PlanThenCode => "plan-then-code",
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Applies one `key.path=value` override to the experiment document, before it is read.
///
/// The value is read as TOML (`3`, `0.5`, `true`, `["a", "b"]`, `"text"`) and otherwise taken
/// as a string. `variant.NAME.section.key` reaches into the variant called NAME.
pub fn apply_override(doc: &mut Table, text: &str) -> Result<()> {
    let bad = |what: &str| {
        Err(RunError::Experiment(format!(
            "--set {text}: {what} (expected KEY=VALUE, e.g. student.max_steps=20)"
        )))
    };
    let Some((key, raw)) = text.split_once('=') else {
        return bad("no `=`");
    };
    let parts: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return bad("empty key part");
    }
    let value = toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()));
    let mut table = doc;
    let mut rest = &parts[..];
    if parts[0] == "variant" {
        if parts.len() < 3 {
            return bad("a variant setting is variant.NAME.KEY");
        }
        let Some(Value::Array(variants)) = table.get_mut("variant") else {
            return bad("the file defines no [[variant]]");
        };
        let found = variants.iter_mut().find_map(|v| match v {
            Value::Table(t) if t.get("name").and_then(Value::as_str) == Some(parts[1]) => Some(t),
            _ => None,
        });
        let Some(found) = found else {
            return bad(&format!("no variant named `{}`", parts[1]));
        };
        table = found;
        rest = &parts[2..];
    }
    for part in &rest[..rest.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(inner) = entry else {
            return bad(&format!("`{part}` is not a section"));
        };
        table = inner;
    }
    table.insert(rest[rest.len() - 1].to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[train_data]
data = ["train.jsonl"]
[eval_data]
data = ["eval.jsonl"]
[student]
model = "smollm2-135m"
"#;

    fn parse(text: &str, overrides: &[&str]) -> Result<Experiment> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Experiment::parse(text, Path::new("exp.toml"), &o)
    }

    #[test]
    fn default_variants_are_baseline_and_codeplan() {
        let e = parse(MINIMAL, &[]).unwrap();
        let v = e.variants();
        assert_eq!(v.len(), 2);
        assert!(v[0].baseline && !v[0].uses_plans());
        assert!(!v[1].baseline && v[1].uses_plans());
        assert_eq!(e.out_dir(), Path::new("out/t"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(&format!("studnet = 1\n{MINIMAL}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exp.toml") && err.contains("studnet"), "{err}");
        let err = parse(
            &format!(
                "{MINIMAL}\n[[variant]]\nname = \"a\"\nbaseline = true\ngenerate = {{ n = 2 }}\n"
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("generate"), "{err}");
    }

    #[test]
    fn run_owned_keys_are_refused() {
        let text = MINIMAL.replace("[student]", "[student]\nout = \"x\"");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("[student] `out`"), "{err}");
    }

    #[test]
    fn ablations_and_overrides_resolve_in_order() {
        let text = format!(
            "{MINIMAL}\n[teacher]\nplans_per_problem = 4\n[[variant]]\nname = \"base\"\nbaseline = true\nablation = \"code-only\"\n[[variant]]\nname = \"one\"\nablation = \"one-plan\"\n[[variant]]\nname = \"fwd\"\nablation = \"forward-plans\"\nteacher = {{ plans_per_problem = 2 }}\n"
        );
        let e = parse(
            &text,
            &["variant.fwd.student.lr=0.001", "student.max_steps=7"],
        )
        .unwrap();
        let v = e.variants();
        assert_eq!(v[1].teacher["plans_per_problem"].as_integer(), Some(1));
        assert_eq!(v[2].teacher["plans_per_problem"].as_integer(), Some(2));
        assert_eq!(v[2].teacher["reasoning"].as_str(), Some("forward"));
        assert_eq!(v[2].student["lr"].as_float(), Some(0.001));
        assert!(v
            .iter()
            .all(|v| v.student["max_steps"].as_integer() == Some(7)));
        assert!(v[2].description.contains("forward"));
        assert!(v.iter().all(|v| v.generate.is_empty()));
    }

    #[test]
    fn plan_then_code_changes_only_the_inference_mode() {
        let text = format!(
            "{MINIMAL}\n[[variant]]\nname = \"base\"\nbaseline = true\nablation = \"code-only\"\n[[variant]]\nname = \"ptc\"\nablation = \"plan-then-code\"\n"
        );
        let v = parse(&text, &[]).unwrap().variants();
        assert_eq!(v[1].generate["prompt"].as_str(), Some("plan-then-code"));
        assert!(v[1].uses_plans());
        assert!(v[1].description.contains("plan-then-code inference"));
    }

    #[test]
    fn baseline_count_and_names_are_checked() {
        let two = format!(
            "{MINIMAL}\n[[variant]]\nname = \"a\"\nbaseline = true\n[[variant]]\nname = \"b\"\nbaseline = true\n"
        );
        assert!(parse(&two, &[])
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
        let dup = format!(
            "{MINIMAL}\n[[variant]]\nname = \"a\"\nbaseline = true\n[[variant]]\nname = \"a\"\n"
        );
        assert!(parse(&dup, &[]).unwrap_err().to_string().contains("twice"));
        assert!(parse(MINIMAL, &["nokey"])
            .unwrap_err()
            .to_string()
            .contains("no `=`"));
        assert!(parse(MINIMAL, &["variant.x.student.lr=1"]).is_err());
    }
}
