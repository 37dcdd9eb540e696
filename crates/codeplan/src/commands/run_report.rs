//! The end of `codeplan run`: the manifest, the report, and the comparison table.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};
use toml::Value;

use codeplan_exec::python::PythonInfo;
use codeplan_report::{BootstrapSettings, ContaminationSettings, ReportInput, VariantInput};
use codeplan_run::plan::outputs;
use codeplan_run::record::{self, Machine};
use codeplan_run::{Experiment, Plan};

use crate::options::DataArgs;

/// The run's manifest: versions, machine, seeds, input hashes, and every stage's key, status
/// and wall time.
pub fn manifest(
    experiment: &Experiment,
    plan: &Plan,
    ran: &[bool],
    elapsed: Duration,
) -> Result<Json> {
    let python = PythonInfo::discover(None).ok();
    let mut stages = Vec::new();
    for (stage, ran) in plan.stages.iter().zip(ran) {
        let rec = record::read_record(&stage.dir)?
            .with_context(|| format!("stage {} has no record", stage.dir.display()))?;
        stages.push(json!({
            "kind": stage.kind.name(),
            "key": stage.key,
            "variants": stage.variants,
            "dir": stage.dir,
            "status": if *ran { "ran" } else { "cached" },
            "wall_seconds": rec.wall_seconds,
            "finished": rec.finished,
            "command": rec.command,
            "inputs": rec.inputs,
        }));
    }
    let seed = |t: &toml::Table| t.get("seed").and_then(Value::as_integer).unwrap_or(0);
    let variants: serde_json::Map<String, Json> = plan
        .variants
        .iter()
        .map(|v| {
            let key = |i: usize| plan.stages[i].key.clone();
            (
                v.variant.name.clone(),
                json!({
                    "description": v.variant.description,
                    "baseline": v.variant.baseline,
                    "stages": {
                        "distill": v.distill.map(key),
                        "train": key(v.train),
                        "generate": key(v.generate),
                        "eval": key(v.eval),
                    },
                    "seeds": { "teacher": seed(&v.variant.teacher), "student": seed(&v.variant.student) },
                }),
            )
        })
        .collect();
    Ok(json!({
        "experiment": experiment.name,
        "codeplan_version": codeplan_run::plan::VERSION,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "finished": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "wall_seconds_this_invocation": elapsed.as_secs_f64(),
        "wall_seconds_all_stages": stages.iter().filter_map(|s| s["wall_seconds"].as_f64()).sum::<f64>(),
        "machine": Machine::detect(),
        "python": python.map(|p| json!({ "executable": p.executable, "version": p.version, "numpy": p.numpy })),
        "seeds": {
            "generate": seed(&experiment.generate),
            "bootstrap": experiment.report.bootstrap_seed,
        },
        "variants": variants,
        "stages": stages,
    }))
}

/// Builds and writes the report (report.json, report.md, report.html) and prints the
/// comparison table with its confidence intervals.
pub fn report(experiment: &Experiment, plan: &Plan, manifest: Json) -> Result<()> {
    let first = &plan.variants[0];
    let eval_problems =
        problems_of(&plan.stages[first.eval].config).context("the evaluation problems")?;
    let train_problems =
        problems_of(&plan.stages[first.train].config).context("the training problems")?;
    let mut plan_files = Vec::new();
    for v in &plan.variants {
        if let Some(d) = v.distill {
            let path = outputs::plans(&plan.stages[d].dir);
            if !plan_files.contains(&path) {
                plan_files.push(path);
            }
        }
    }
    let variants = plan
        .variants
        .iter()
        .map(|v| VariantInput {
            name: v.variant.name.clone(),
            description: v.variant.description.clone(),
            baseline: v.variant.baseline,
            samples: outputs::samples(&plan.stages[v.generate].dir),
            verdicts: outputs::verdicts(&plan.stages[v.eval].dir),
            train_metrics: Some(outputs::metrics(&plan.stages[v.train].dir)),
            plans_summary: v
                .distill
                .map(|d| outputs::plans_summary(&plan.stages[d].dir)),
        })
        .collect();
    let ks = match experiment.eval.get("k") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_integer)
            .map(|k| k as usize)
            .collect(),
        _ => super::eval::DEFAULT_KS.to_vec(),
    };
    let settings = &experiment.report;
    let input = ReportInput {
        title: if experiment.description.is_empty() {
            format!("codeplan experiment `{}`", experiment.name)
        } else {
            format!("{}: {}", experiment.name, experiment.description)
        },
        eval_problems,
        train_problems,
        plan_files,
        variants,
        ks,
        manifest,
        bootstrap: BootstrapSettings {
            resamples: settings.bootstrap_resamples,
            seed: settings.bootstrap_seed,
            ..Default::default()
        },
        contamination: ContaminationSettings {
            n: settings.contamination_ngram,
            threshold: settings.contamination_threshold,
        },
        examples: settings.examples,
    };
    let report = codeplan_report::build(&input).context("building the report")?;
    codeplan_report::write(&report, &plan.out).context("writing the report")?;
    print_table(&report);
    println!(
        "\nReport: {}  (and report.md, report.json beside it)",
        plan.out.join("report.html").display()
    );
    Ok(())
}

/// The comparison table: pass@k per variant, and each variant's difference from the
/// baseline with its confidence interval and what it does (not) show.
fn print_table(report: &codeplan_report::Report) {
    let ks: Vec<usize> = report
        .ks
        .iter()
        .copied()
        .filter(|k| {
            report
                .variants
                .iter()
                .all(|v| v.overall.pass_at_k.contains_key(k))
        })
        .collect();
    print!("\n{:<16} {:>8} {:>8}", "variant", "problems", "samples");
    for k in &ks {
        print!(" {:>9}", format!("pass@{k}"));
    }
    println!();
    for v in &report.variants {
        print!(
            "{:<16} {:>8} {:>8}",
            format!("{}{}", v.name, if v.baseline { "*" } else { "" }),
            v.overall.problems,
            v.overall.samples
        );
        for k in &ks {
            print!(" {:>8.2}%", 100.0 * v.overall.pass_at_k[k]);
        }
        println!();
    }
    let level = (report.bootstrap.confidence * 100.0).round();
    for imp in &report.improvements {
        let Some(d) = &imp.overall else { continue };
        println!(
            "\n{} vs {}: pass@1 {:+.2} points, {level}% CI [{:+.2}, {:+.2}] over {} problems (paired bootstrap){}",
            imp.variant,
            imp.baseline,
            100.0 * d.absolute,
            100.0 * d.absolute_ci[0],
            100.0 * d.absolute_ci[1],
            d.problems,
            match (d.relative, d.relative_ci) {
                (Some(r), Some(ci)) => format!(
                    "; relative {:+.0}% [{:+.0}%, {:+.0}%]",
                    100.0 * r,
                    100.0 * ci[0],
                    100.0 * ci[1]
                ),
                _ => String::new(),
            }
        );
        println!("  {}", d.verdict);
    }
    println!("(* baseline)");
}

/// Loads the problems a stage's settings select.
pub(super) fn problems_of(config: &toml::Table) -> Result<Vec<codeplan_data::Problem>> {
    let keys: toml::Table = config
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "data" | "format" | "ids" | "difficulty" | "limit" | "skip_invalid"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let args: DataArgs = Value::Table(keys).try_into()?;
    args.load()
}
