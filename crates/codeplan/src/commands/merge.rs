//! `codeplan merge`: join the outputs of a run split with `--shard I/N` into what one
//! unsharded run writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;

use codeplan_data::{ShardRecord, ShardSet};
use codeplan_exec::eval::{
    write_atomic, write_summary, Environment, EvalOptions, RunCounts, Summary, VerdictLine,
};
use codeplan_teacher::records::{CandidateRecord, PlanRecord};
use codeplan_teacher::summary::Summary as DistillSummary;

/// Arguments of `codeplan merge`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  codeplan merge samples-0.jsonl samples-1.jsonl samples-2.jsonl samples-3.jsonl --out samples.jsonl
  codeplan merge out/eval-0 out/eval-1 out/eval-2 out/eval-3 --out out/eval
  codeplan merge plans/shard-* --out plans/all

The kind (generate, eval or distill) comes from each shard's record (FILE.shard.json beside a
samples file, DIR/shard.json in an output folder). Every shard 0..N-1 must be given exactly
once, all made from the same selection and settings; otherwise nothing is written.")]
pub struct MergeArgs {
    /// Shard outputs, in any order: samples files (generate) or output folders (eval, distill).
    #[arg(required = true, value_name = "SHARD")]
    pub shards: Vec<PathBuf>,
    /// The merged output: a samples file (generate) or a folder (eval, distill).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// Runs `codeplan merge`.
pub fn run(args: MergeArgs) -> Result<()> {
    let mut records = Vec::new();
    for path in &args.shards {
        let (_, record) = ShardRecord::read(path)?;
        records.push((path.clone(), record));
    }
    let set = ShardSet::check(records)?;
    for shard in &set.outputs {
        if same_path(shard, &args.out) {
            bail!(
                "--out {} is one of the shards: write the merged output elsewhere",
                args.out.display()
            );
        }
    }
    match set.kind.as_str() {
        "generate" => merge_generate(&set, &args.out)?,
        "eval" => merge_eval(&set, &args.out)?,
        "distill" => merge_distill(&set, &args.out)?,
        other => bail!("unknown shard kind {other:?} (expected generate, eval or distill)"),
    }
    println!(
        "Merged {} {} shard(s) ({} problem(s)) into {}",
        set.count(),
        set.kind,
        set.selection.len(),
        args.out.display()
    );
    Ok(())
}

/// Samples files: each problem must have all `n` samples (a shard cut short has fewer).
fn merge_generate(set: &ShardSet, out: &Path) -> Result<()> {
    let files = read_all(set, |p| p.to_path_buf())?;
    let merged = set.merge_jsonl(&files)?;
    let n = set.settings["n"].as_u64().unwrap_or(1) as usize;
    for (p, (problem, have)) in set
        .selection
        .iter()
        .zip(&merged.lines_per_problem)
        .enumerate()
    {
        if *have != n {
            let shard = p % set.count();
            bail!(
                "{}: problem {} has {have} of {n} samples (shard {shard}/{}): did the shard finish?",
                files[shard].0.display(),
                problem.id,
                set.count()
            );
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    ShardRecord::remove(&ShardRecord::path_for(out, false))?;
    write_atomic(out, &merged.bytes).with_context(|| format!("writing {}", out.display()))
}

/// Eval folders: verdicts in problem order; the summary recomputed over all of them.
fn merge_eval(set: &ShardSet, out: &Path) -> Result<()> {
    let files = read_all(set, |p| p.join("verdicts.jsonl"))?;
    let merged = set.merge_jsonl(&files)?;
    let verdicts: Vec<VerdictLine> = parse_lines(&merged.bytes, "verdicts.jsonl")?;
    let options: EvalOptions = serde_json::from_value(set.settings["options"].clone())
        .context("the shards' eval settings have no readable options")?;
    let mut counts = RunCounts::default();
    let mut environment = None;
    for shard in &set.outputs {
        let s: Value = read_json(&shard.join("summary.json"))?;
        let count = |k: &str| s[k].as_u64().unwrap_or(0) as usize;
        counts.reused += count("reused");
        counts.judged_now += count("judged_now");
        counts.duplicates += count("duplicates");
        counts.wall_s += s["wall_s"].as_f64().unwrap_or(0.0);
        if environment.is_none() {
            let env: Environment = serde_json::from_value(s["environment"].clone())
                .with_context(|| format!("{}/summary.json: environment", shard.display()))?;
            environment = Some(env);
        }
    }
    let difficulty: HashMap<String, String> = set
        .selection
        .iter()
        .map(|p| (p.id.clone(), p.difficulty.clone()))
        .collect();
    let summary = Summary::from_verdicts(
        &difficulty,
        &verdicts,
        &options,
        environment.expect("at least one shard"),
        counts,
    );
    create_folder(out)?;
    write_atomic(&out.join("verdicts.jsonl"), &merged.bytes)
        .with_context(|| format!("writing {}/verdicts.jsonl", out.display()))?;
    write_summary(out, &summary)?;
    print!("{}", summary.to_markdown());
    Ok(())
}

/// Distill folders: plans and candidates in problem order, the summary recomputed through
/// the teacher's summary code, ledgers concatenated, shard 0's run.json with the wall times
/// summed.
fn merge_distill(set: &ShardSet, out: &Path) -> Result<()> {
    let plans = set.merge_jsonl(&read_all(set, |p| p.join("plans.jsonl"))?)?;
    let candidates = set.merge_jsonl(&read_all(set, |p| p.join("candidates.jsonl"))?)?;
    let plan_records: Vec<PlanRecord> = parse_lines(&plans.bytes, "plans.jsonl")?;
    let candidate_records: Vec<CandidateRecord> =
        parse_lines(&candidates.bytes, "candidates.jsonl")?;
    let mut parts: Vec<DistillSummary> = Vec::new();
    let mut ledger = Vec::new();
    let mut wall_s = 0.0;
    for shard in &set.outputs {
        parts.push(read_json(&shard.join("summary.json"))?);
        let path = shard.join("ledger.jsonl");
        let bytes = read(&path)?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bail!("{}: incomplete last line", path.display());
        }
        ledger.extend_from_slice(&bytes);
        let run: Value = read_json(&shard.join("run.json"))?;
        wall_s += run["wall_s"].as_f64().unwrap_or(0.0);
    }
    let labels: Vec<(&str, &str)> = set
        .selection
        .iter()
        .map(|p| (p.id.as_str(), p.difficulty.as_str()))
        .collect();
    let summary = DistillSummary::combine(&parts, &labels, &plan_records, &candidate_records);
    let mut run: Value = read_json(&set.outputs[0].join("run.json"))?;
    run["wall_s"] = wall_s.into();
    run["merged_shards"] = set.count().into();
    create_folder(out)?;
    let write = |name: &str, data: &[u8]| {
        write_atomic(&out.join(name), data)
            .with_context(|| format!("writing {}/{name}", out.display()))
    };
    write("plans.jsonl", &plans.bytes)?;
    write("candidates.jsonl", &candidates.bytes)?;
    write("ledger.jsonl", &ledger)?;
    write("run.json", serde_json::to_string_pretty(&run)?.as_bytes())?;
    codeplan_teacher::write_summary(&summary, out)?;
    print!("{}", summary.markdown());
    Ok(())
}

/// Reads one file per shard (shard 0 first), the file's path given by `file`.
fn read_all(set: &ShardSet, file: impl Fn(&Path) -> PathBuf) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    set.outputs
        .iter()
        .map(|o| {
            let path = file(o);
            Ok((path.clone(), read(&path)?))
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read(path)?).with_context(|| format!("reading {}", path.display()))
}

fn parse_lines<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<Vec<T>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice(l)
                .with_context(|| format!("merged {what}, line {}: unreadable", i + 1))
        })
        .collect()
}

/// Creates the output folder and removes a shard record an earlier run left there (a merged
/// folder is not a shard).
fn create_folder(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    ShardRecord::remove(&ShardRecord::path_for(out, true))?;
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
