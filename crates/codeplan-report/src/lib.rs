//! codeplan's experiment report: a finished experiment (several variants of the student, each
//! generated and judged on the same evaluation problems) as `report.json`, `report.md` and a
//! self-contained `report.html`; and the comparison of two finished runs.
//!
//! Every score is computed here from the per-sample verdicts, with codeplan-exec's metrics
//! (the unbiased pass@k estimator), excluding the samples the engine failed on exactly as
//! `codeplan eval`'s summary does. Each non-baseline variant's pass@1 is compared with the
//! baseline's by a seeded paired bootstrap over problems. The report also carries plan
//! statistics, training loss curves, side-by-side examples, the run's manifest and a word
//! n-gram contamination check. The library never prints.

#![warn(missing_docs)]

mod bootstrap;
mod compare;
pub mod contamination;
mod error;
mod examples;
mod html;
mod inputs;
mod markdown;
mod report;
mod scores;
mod svg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use codeplan_data::{only_unrated, Problem};

pub use bootstrap::MIN_PROBLEMS;
pub use compare::{
    compare, render_comparison_markdown, Comparison, KComparison, ProblemChange, VariantComparison,
};
pub use contamination::{ContaminationReport, ProblemOverlap};
pub use error::ReportError;
pub use html::render_html;
pub use markdown::render_markdown;
pub use report::{
    Difference, Example, ExampleSide, GroupScores, Improvement, PlanStats, ProblemResult, Report,
    SampleResult, VariantFiles, VariantReport, FORMAT_VERSION,
};

/// One variant's finished outputs.
#[derive(Debug, Clone)]
pub struct VariantInput {
    /// Its name: `baseline`, `codeplan`, `forward-plans`, ...
    pub name: String,
    /// One line, e.g. "code + plan tasks, backward plans, K=2, validated".
    pub description: String,
    /// Whether it is the baseline (exactly one variant is).
    pub baseline: bool,
    /// Samples JSONL written by `codeplan generate`.
    pub samples: PathBuf,
    /// `verdicts.jsonl` written by `codeplan eval`.
    pub verdicts: PathBuf,
    /// `metrics.jsonl` of `codeplan train`.
    pub train_metrics: Option<PathBuf>,
    /// `summary.json` of `codeplan distill`.
    pub plans_summary: Option<PathBuf>,
}

/// The paired bootstrap's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSettings {
    /// Resamples (default 10,000).
    pub resamples: usize,
    /// Seed of the resampling stream (default 0).
    pub seed: u64,
    /// Confidence level of the intervals (default 0.95).
    pub confidence: f64,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        BootstrapSettings {
            resamples: 10_000,
            seed: 0,
            confidence: 0.95,
        }
    }
}

/// The contamination check's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContaminationSettings {
    /// Word n-gram size (default 13, as in GPT-3's decontamination).
    pub n: usize,
    /// Share of a question's n-grams found in one training document at which it is flagged
    /// (default 0.5: APPS statements share boilerplate sentences about input formats, so a
    /// few shared 13-grams are normal; half the question is not).
    pub threshold: f64,
}

impl Default for ContaminationSettings {
    fn default() -> Self {
        ContaminationSettings {
            n: 13,
            threshold: 0.5,
        }
    }
}

/// Everything a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The experiment's title.
    pub title: String,
    /// The evaluation set.
    pub eval_problems: Vec<Problem>,
    /// The training problems (for the contamination check).
    pub train_problems: Vec<Problem>,
    /// plans.jsonl files used for training (for the contamination check).
    pub plan_files: Vec<PathBuf>,
    /// The variants.
    pub variants: Vec<VariantInput>,
    /// pass@k to report (each only where k <= n for every problem).
    pub ks: Vec<usize>,
    /// Free-form manifest: versions, hashes, seeds, machine, wall time per stage.
    pub manifest: serde_json::Value,
    /// Bootstrap settings.
    pub bootstrap: BootstrapSettings,
    /// Contamination-check settings.
    pub contamination: ContaminationSettings,
    /// Side-by-side examples per non-baseline variant (default 3).
    pub examples: usize,
}

impl ReportInput {
    /// An input with the default settings (k = 1, 5; 10,000 resamples; 13-grams; 3 examples).
    pub fn new(title: impl Into<String>, eval_problems: Vec<Problem>) -> Self {
        ReportInput {
            title: title.into(),
            eval_problems,
            train_problems: Vec::new(),
            plan_files: Vec::new(),
            variants: Vec::new(),
            ks: vec![1, 5],
            manifest: serde_json::Value::Null,
            bootstrap: BootstrapSettings::default(),
            contamination: ContaminationSettings::default(),
            examples: 3,
        }
    }
}

fn validate(input: &ReportInput) -> Result<(), ReportError> {
    let bad = |m: String| Err(ReportError::Input(m));
    let baselines: Vec<&str> = input
        .variants
        .iter()
        .filter(|v| v.baseline)
        .map(|v| v.name.as_str())
        .collect();
    if baselines.len() != 1 {
        return bad(format!(
            "exactly one variant must be the baseline (found {}: {})",
            baselines.len(),
            baselines.join(", ")
        ));
    }
    let mut names = std::collections::HashSet::new();
    for v in &input.variants {
        if !names.insert(v.name.as_str()) {
            return bad(format!("two variants are named {:?}", v.name));
        }
    }
    let mut ids = std::collections::HashSet::new();
    for p in &input.eval_problems {
        if !ids.insert(p.id.as_str()) {
            return bad(format!(
                "problem {} appears twice in the evaluation set",
                p.id
            ));
        }
    }
    let b = &input.bootstrap;
    if b.resamples == 0 || !(b.confidence > 0.0 && b.confidence < 1.0) {
        return bad(format!(
            "bootstrap needs resamples >= 1 and 0 < confidence < 1 (got {} and {})",
            b.resamples, b.confidence
        ));
    }
    let c = &input.contamination;
    if c.n == 0 || !(0.0..=1.0).contains(&c.threshold) {
        return bad(format!(
            "contamination needs n >= 1 and 0 <= threshold <= 1 (got {} and {})",
            c.n, c.threshold
        ));
    }
    Ok(())
}

/// Builds the report from the variants' files.
pub fn build(input: &ReportInput) -> Result<Report, ReportError> {
    validate(input)?;
    let mut variants = Vec::new();
    for v in &input.variants {
        let verdicts = inputs::read_verdicts(&v.verdicts)?;
        let s = scores::score(&v.verdicts, &verdicts, &input.eval_problems, &input.ks)?;
        let plans = v
            .plans_summary
            .as_deref()
            .map(inputs::read_plan_stats)
            .transpose()?;
        let loss = v
            .train_metrics
            .as_deref()
            .map(inputs::read_loss)
            .transpose()?;
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        variants.push(VariantReport {
            name: v.name.clone(),
            description: v.description.clone(),
            baseline: v.baseline,
            files: VariantFiles {
                samples: v.samples.display().to_string(),
                verdicts: v.verdicts.display().to_string(),
                train_metrics: show(&v.train_metrics),
                plans_summary: show(&v.plans_summary),
            },
            overall: s.overall,
            by_difficulty: s.by_difficulty,
            internal_errors: s.internal_errors,
            unscored_problems: s.unscored,
            problems: s.problems,
            plans,
            loss,
        });
    }
    let difficulties =
        report::order_difficulties(input.eval_problems.iter().map(|p| p.difficulty_label()));
    let base_i = variants.iter().position(|v| v.baseline).expect("validated");
    let improvements = variants
        .iter()
        .filter(|v| !v.baseline)
        .map(|v| improvement(&variants[base_i], v, &difficulties, &input.bootstrap))
        .collect();
    let examples = examples_of(input, &variants, base_i)?;
    let mut plans = Vec::new();
    for f in &input.plan_files {
        for p in inputs::read_plans(f)? {
            plans.push(contamination::Reference {
                label: format!("plan for {} ({}:{})", p.problem_id, f.display(), p.line),
                text: p.plan,
            });
        }
    }
    let contamination = contamination::check(
        &input.eval_problems,
        &input.train_problems,
        &plans,
        &input.contamination,
    );
    Ok(Report {
        format_version: FORMAT_VERSION,
        title: input.title.clone(),
        ks: input.ks.clone(),
        difficulties,
        variants,
        improvements,
        examples,
        contamination,
        bootstrap: input.bootstrap,
        manifest: input.manifest.clone(),
    })
}

/// `var`'s pass@1 against `base`'s, overall and per difficulty, over the problems both scored.
fn improvement(
    base: &VariantReport,
    var: &VariantReport,
    difficulties: &[String],
    settings: &BootstrapSettings,
) -> Improvement {
    let rate = |p: &ProblemResult| p.c as f64 / p.n as f64;
    let base_by_id: HashMap<&str, &ProblemResult> = base
        .problems
        .iter()
        .filter(|p| p.n > 0)
        .map(|p| (p.problem_id.as_str(), p))
        .collect();
    // (difficulty, baseline pass@1, variant pass@1) per problem both scored.
    let pairs: Vec<(&str, f64, f64)> = var
        .problems
        .iter()
        .filter(|p| p.n > 0)
        .filter_map(|vp| {
            base_by_id
                .get(vp.problem_id.as_str())
                .map(|bp| (vp.difficulty.as_str(), rate(bp), rate(vp)))
        })
        .collect();
    let diff = |keep: &dyn Fn(&str) -> bool| {
        let (b, v): (Vec<f64>, Vec<f64>) = pairs
            .iter()
            .filter(|(d, _, _)| keep(d))
            .map(|&(_, b, v)| (b, v))
            .unzip();
        bootstrap::paired(&var.name, &b, &v, settings)
    };
    let by_difficulty = if only_unrated(difficulties.iter().map(String::as_str)) {
        Default::default()
    } else {
        difficulties
            .iter()
            .filter_map(|d| diff(&|x| x == d).map(|r| (d.clone(), r)))
            .collect()
    };
    Improvement {
        variant: var.name.clone(),
        baseline: base.name.clone(),
        overall: diff(&|_| true),
        by_difficulty,
    }
}

fn examples_of(
    input: &ReportInput,
    variants: &[VariantReport],
    base_i: usize,
) -> Result<Vec<Example>, ReportError> {
    if input.examples == 0 {
        return Ok(Vec::new());
    }
    let base = &variants[base_i];
    let picks: Vec<(usize, Vec<examples::Pick>)> = variants
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.baseline)
        .map(|(i, v)| (i, examples::pick(base, v, input.examples)))
        .collect();
    // Read each samples file once, keeping only the samples shown.
    let mut wanted: Vec<Vec<(String, usize)>> = vec![Vec::new(); variants.len()];
    for (i, ps) in &picks {
        for p in ps {
            wanted[base_i].push((p.problem_id.clone(), p.baseline_idx));
            wanted[*i].push((p.problem_id.clone(), p.variant_idx));
        }
    }
    let mut codes = Vec::new();
    for (v, w) in input.variants.iter().zip(&wanted) {
        codes.push(if w.is_empty() {
            HashMap::new()
        } else {
            inputs::read_codes(&v.samples, &input.eval_problems, w)?
        });
    }
    let by_id: HashMap<&str, &Problem> = input
        .eval_problems
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    Ok(picks
        .iter()
        .flat_map(|(i, ps)| {
            let (codes, by_id) = (&codes, &by_id);
            ps.iter().map(move |p| {
                examples::make(
                    p,
                    by_id[p.problem_id.as_str()],
                    base,
                    &variants[*i],
                    &codes[base_i],
                    &codes[*i],
                )
            })
        })
        .collect())
}

/// Reads a `report.json`.
pub fn read(path: &Path) -> Result<Report, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ReportError::file(path, format!("not a codeplan report.json: {e}")))
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` (created if needed), each
/// through a temporary file and a rename, so a crash never leaves half a report.
pub fn write(report: &Report, dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let json = serde_json::to_vec_pretty(report).expect("a report serialises");
    let files: [(&str, Vec<u8>); 3] = [
        ("report.json", json),
        ("report.md", render_markdown(report).into_bytes()),
        ("report.html", render_html(report).into_bytes()),
    ];
    for (name, data) in files {
        let path = dir.join(name);
        codeplan_exec::eval::write_atomic(&path, &data).map_err(|e| ReportError::io(&path, e))?;
    }
    Ok(())
}
