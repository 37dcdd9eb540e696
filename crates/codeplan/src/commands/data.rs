//! `codeplan data`: dataset health.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use codeplan_data::solutions_as_samples;
use codeplan_exec::eval::{evaluate, write_atomic, EvalOptions};
use codeplan_exec::judge::{SampleStatus, SampleVerdict};

use crate::options::{DataArgs, JudgeArgs};
use crate::progress::samples_bar;

/// Dataset commands.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Run the reference solutions through the judge and report the dataset's health.
    ///
    /// EXECUTES the dataset's solutions in the sandbox. Reports, per problem, how many
    /// reference solutions pass, and for problems whose solutions fail, why.
    #[command(after_help = "Examples:
  codeplan data check --data data/apps/train.jsonl
  codeplan data check --data data/mbpp/mbpp_sanitized.jsonl --judge strict
  codeplan data check --data data/apps/train.jsonl --difficulty interview --solutions 3 --out out/health")]
    Check(CheckArgs),
}

/// Arguments of `data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Reference solutions to run per problem (0 = all).
    #[arg(long, default_value_t = 1)]
    solutions: usize,
    /// Output folder (verdicts.jsonl, summary.*, health.json, health.md).
    #[arg(long, value_name = "DIR", default_value = "out/data-check")]
    out: PathBuf,
    #[command(flatten)]
    judge: JudgeArgs,
}

/// Runs a `data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Check(args) => check(args),
    }
}

/// The health of one problem.
#[derive(Debug, Serialize)]
struct ProblemHealth {
    problem_id: String,
    difficulty: String,
    solutions_run: usize,
    solutions_passed: usize,
    /// Why the first failing solution failed.
    first_failure: Option<String>,
}

fn failure_reason(v: &SampleVerdict) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &v.tests {
        let name = serde_json::to_value(t.status)
            .ok()
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default();
        if name != "pass" {
            *counts.entry(name).or_default() += 1;
        }
    }
    let mut s = match v.status {
        SampleStatus::CompileError => "compile error".to_owned(),
        SampleStatus::GlobalTimeout => "whole-sample time limit".to_owned(),
        SampleStatus::NoResult => "process ended without a result".to_owned(),
        SampleStatus::InternalError => "engine error".to_owned(),
        _ => counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let detail = v
        .tests
        .iter()
        .find_map(|t| t.stderr_tail.clone())
        .unwrap_or_else(|| v.stderr_tail.clone());
    let last = detail.trim().lines().last().unwrap_or("").trim().to_owned();
    if !last.is_empty() {
        let _ = write!(s, " ({})", last.chars().take(160).collect::<String>());
    }
    s
}

fn check(args: CheckArgs) -> Result<()> {
    args.judge.validate()?;
    let problems = args.data.load()?;
    let max = (args.solutions > 0).then_some(args.solutions);
    let samples = solutions_as_samples(&problems, max);
    let without: Vec<&str> = problems
        .iter()
        .filter(|p| p.solutions.is_empty())
        .map(|p| p.id.as_str())
        .collect();
    let options = EvalOptions {
        judge: args.judge.choice(),
        limits: args.judge.limits()?,
        ks: vec![1],
        rerun_timeouts: !args.judge.no_rerun_timeouts,
        calibrate: args.judge.calibration()?,
    };
    let pool = args.judge.pool()?;
    let bar = samples_bar(samples.len());
    let evaluation = evaluate(&pool, &problems, &samples, &options, &args.out, |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} passed", p.passed));
    })
    .with_context(|| format!("checking into {}", args.out.display()))?;
    bar.finish_and_clear();

    let mut by_problem: BTreeMap<&str, Vec<&SampleVerdict>> = BTreeMap::new();
    for line in &evaluation.verdicts {
        by_problem
            .entry(&line.verdict.problem_id)
            .or_default()
            .push(&line.verdict);
    }
    let mut health = Vec::new();
    for p in &problems {
        let Some(vs) = by_problem.get(p.id.as_str()) else {
            continue;
        };
        let mut vs = vs.clone();
        vs.sort_by_key(|v| v.sample_idx);
        health.push(ProblemHealth {
            problem_id: p.id.clone(),
            difficulty: p.difficulty_label().to_owned(),
            solutions_run: vs.len(),
            solutions_passed: vs.iter().filter(|v| v.passed).count(),
            first_failure: vs.iter().find(|v| !v.passed).map(|v| failure_reason(v)),
        });
    }
    let healthy = health
        .iter()
        .filter(|h| h.solutions_passed == h.solutions_run)
        .count();
    let mut md = format!(
        "# Dataset health ({} judge)\n\n{} problems checked with {} solution(s) each at most: \
         {healthy} all pass, {} have a failing solution, {} have no reference solution.\n\n",
        serde_json::to_value(options.judge)?.as_str().unwrap_or(""),
        health.len(),
        if args.solutions == 0 {
            "all".to_owned()
        } else {
            args.solutions.to_string()
        },
        health.len() - healthy,
        without.len(),
    );
    let failing: Vec<&ProblemHealth> = health
        .iter()
        .filter(|h| h.solutions_passed < h.solutions_run)
        .collect();
    if !failing.is_empty() {
        md.push_str("| problem | difficulty | passed | first failure |\n|---|---|---:|---|\n");
        for h in &failing {
            let _ = writeln!(
                md,
                "| {} | {} | {}/{} | {} |",
                h.problem_id,
                h.difficulty,
                h.solutions_passed,
                h.solutions_run,
                h.first_failure.as_deref().unwrap_or("").replace('|', "\\|")
            );
        }
    }
    if !without.is_empty() {
        let _ = writeln!(md, "\nNo reference solution: {}", without.join(", "));
    }
    write_atomic(&args.out.join("health.md"), md.as_bytes())?;
    write_atomic(
        &args.out.join("health.json"),
        &serde_json::to_vec_pretty(&health)?,
    )?;
    println!("{md}");
    println!("{}", evaluation.summary.to_markdown());
    println!(
        "Wrote {}/health.md, health.json, verdicts.jsonl, summary.*",
        args.out.display()
    );
    Ok(())
}
