//! `codeplan eval`: judge a samples file and report pass@k.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use codeplan_data::{read_samples, CodeExtraction, SampleOptions, SHARD_RECORD};
use codeplan_exec::eval::{evaluate, EvalOptions};
use serde_json::json;

use crate::options::{data_hashes, parse_shard, read_config, DataArgs, JudgeArgs, ShardPart};
use crate::progress::samples_bar;

/// Arguments of `codeplan eval` (also readable from a TOML file with `--config`).
#[derive(Args, Debug, Default, Deserialize)]
#[command(after_help = "Examples:
  codeplan eval --data data/apps/test.jsonl --samples samples.jsonl --judge apps --k 1,5,10 --out out/eval
  codeplan eval --data data/humaneval/HumanEval.jsonl.gz --samples he.jsonl --extract fenced
  codeplan eval --config eval.toml --jobs 4")]
#[serde(default, deny_unknown_fields)]
pub struct EvalArgs {
    /// TOML file with any of these options (flags override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Samples JSONL: {"problem_id","sample_idx","code"} or human-eval {"task_id","completion"}.
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// How to take code from each sample: raw (as is) or fenced (first ```python block).
    #[arg(long, value_enum)]
    pub extract: Option<ExtractArg>,
    /// k values for pass@k (comma-separated; only k ≤ samples per problem are reported).
    #[arg(long, value_delimiter = ',', value_name = "K,...")]
    pub k: Option<Vec<usize>>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub judge: JudgeArgs,
    /// Judge only shard I of N (0-based): the samples of the problems at positions I, I+N,
    /// I+2N, … of the selection; leaves DIR/shard.json, and `codeplan merge` joins the N folders.
    #[arg(long, value_name = "I/N")]
    #[serde(skip)]
    pub shard: Option<String>,
}

/// The k values of pass@k when `--k` is not given.
pub const DEFAULT_KS: [usize; 3] = [1, 5, 10];

/// Code extraction on the command line.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractArg {
    /// The sample text is the program.
    Raw,
    /// Take the first ```python (or unlabelled) fenced block of a markdown answer.
    Fenced,
}

/// Runs `codeplan eval`.
pub fn run(mut args: EvalArgs) -> Result<()> {
    if let Some(path) = args.config.clone() {
        let file: EvalArgs = read_config(&path)?;
        args.data.merge(file.data);
        args.judge.merge(file.judge);
        args.samples = args.samples.or(file.samples);
        args.extract = args.extract.or(file.extract);
        args.k = args.k.or(file.k);
        args.out = args.out.or(file.out);
    }
    // Check every setting before loading anything, so a typo fails fast.
    let shard = parse_shard(args.shard.as_deref())?;
    args.judge.validate()?;
    let options = EvalOptions {
        judge: args.judge.choice(),
        limits: args.judge.limits()?,
        ks: args.k.clone().unwrap_or_else(|| DEFAULT_KS.to_vec()),
        rerun_timeouts: !args.judge.no_rerun_timeouts,
        calibrate: args.judge.calibration()?,
    };
    if options.ks.contains(&0) {
        bail!("--k values must be at least 1");
    }
    let Some(samples_path) = args.samples.clone() else {
        bail!("no samples given: pass --samples FILE (JSONL of {{\"problem_id\", \"sample_idx\", \"code\"}})");
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/eval"));
    let (part, problems) =
        ShardPart::begin(shard, out.join(SHARD_RECORD), args.data.load()?, true)?;
    let extract = match args.extract {
        Some(ExtractArg::Fenced) => CodeExtraction::Fenced,
        _ => CodeExtraction::Raw,
    };
    // Samples are checked against the whole selection (a typo in any line is still an error),
    // then a shard keeps those of its own problems.
    let mut loaded = read_samples(
        &samples_path,
        part.selection(),
        &SampleOptions {
            skip_invalid: args.data.skip_invalid,
            extract,
        },
    )?;
    if shard.is_some() {
        let mine: HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
        loaded
            .samples
            .retain(|s| mine.contains(s.problem_id.as_str()));
    }
    if !loaded.skipped.is_empty() {
        eprintln!(
            "warning: skipped {} invalid sample line(s) (--skip-invalid):",
            loaded.skipped.len()
        );
        for s in &loaded.skipped {
            eprintln!("  {s}");
        }
    }
    let pool = args.judge.pool()?;
    let bar = samples_bar(loaded.samples.len());
    let evaluation = evaluate(&pool, &problems, &loaded.samples, &options, &out, |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} passed", p.passed));
    })
    .with_context(|| format!("evaluating into {}", out.display()))?;
    bar.finish_and_clear();
    part.finish("eval", || {
        // Everything that decides the verdicts; shards merge only when these agree. Not the
        // samples file: each shard may judge its own generate shard's samples.
        let env = &evaluation.summary.environment;
        Ok(json!({
            "codeplan_version": env!("CARGO_PKG_VERSION"),
            "options": options,
            "extract": format!("{extract:?}"),
            "data_sha256": data_hashes(&args.data)?,
            "python": env.python,
            "numpy": env.numpy,
            "memory_bytes": env.sandbox_limits.memory_bytes,
        }))
    })?;
    println!("{}", evaluation.summary.to_markdown());
    println!(
        "Wrote {}/verdicts.jsonl, summary.json, summary.md",
        out.display()
    );
    Ok(())
}
