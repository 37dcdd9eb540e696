//! The end of `codeplan run`: the manifest, the report, and the comparison table.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};
use toml::Value;

use codeplan_exec::python::PythonInfo;
use codeplan_run::record::{self, Machine};
use codeplan_run::{Experiment, Plan};

use crate::options::DataArgs;

/// The run's manifest: versions, machine, seeds, input hashes, and every stage's key, status
/// and wall time.
pub fn manifest(
    experiment: &Experiment,
    plan: &Plan,
    timings: &[(&str, Option<f64>)],
    elapsed: Duration,
) -> Result<Json> {
    let python = PythonInfo::discover(None).ok();
    let mut stages = Vec::new();
    for (stage, (status, _)) in plan.stages.iter().zip(timings) {
        let rec = record::read_record(&stage.dir)?
            .with_context(|| format!("stage {} has no record", stage.dir.display()))?;
        stages.push(json!({
            "kind": stage.kind.name(),
            "key": stage.key,
            "variants": stage.variants,
            "dir": stage.dir,
            "status": status,
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
