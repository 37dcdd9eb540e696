//! `codeplan generate`: sample programs for problems with a local model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use codeplan_data::ShardRecord;
use serde::Deserialize;

use codeplan_model::solve::{solve_problems, PromptStyle, SolveOptions};
use codeplan_model::SamplingParams;
use codeplan_train::data::sha256_path;
use serde_json::json;

use crate::model_args::ModelArgs;
use crate::options::{data_hashes, parse_shard, read_config, DataArgs, ShardPart};
use crate::progress::problems_bar;

/// Arguments of `codeplan generate` (also readable from a TOML file with `--config`).
#[derive(Args, Debug, Default, Deserialize)]
#[command(after_help = "Examples:
  codeplan generate --model smollm2-135m --data data/apps/test.jsonl --n 10 --out samples.jsonl
  codeplan generate --model qwen2.5-coder-0.5b --data data/humaneval/HumanEval.jsonl.gz \\
      --prompt chat --n 5 --temperature 0.6 --top-p 0.95 --max-new-tokens 512 --out he.jsonl
  codeplan generate --model ./my-model.gguf --data data/mbpp --limit 20 --temperature 0 --n 1 --out mbpp.jsonl
  codeplan generate --model qwen2.5-coder-1.5b --device cuda --data data/apps/test.jsonl --n 10 --out gpu.jsonl
      (a GPU needs a build with --features cuda)

Then judge the samples: codeplan eval --data <same data> --samples samples.jsonl
A rerun with the same --out skips problems whose samples are all there (after a crash, too).")]
#[serde(default, deny_unknown_fields)]
pub struct GenerateArgs {
    /// TOML file with any of these options (flags override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Samples per problem [default: 1].
    #[arg(long)]
    pub n: Option<usize>,
    /// Sampling temperature; 0 = greedy [default: 0.6].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass [default: 0.95].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Keep only the k most likely tokens; 0 = all [default: 0].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Base seed: each problem derives its own from it and its id [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// New tokens per sample [default: 512].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Stop sequence (repeatable).
    #[arg(long)]
    pub stop: Option<Vec<String>>,
    /// codeplan: the paper's code-task prompt; chat: the model's chat template, code taken
    /// from the answer's first ```python block; plan-then-code: a plan first, then code
    /// following it (both in the paper's formats) [default: codeplan].
    #[arg(long, value_enum)]
    pub prompt: Option<PromptArg>,
    /// Longest prompt in tokens; longer questions are cut and reported [default: context −
    /// max-new-tokens].
    #[arg(long)]
    pub max_prompt_tokens: Option<usize>,
    /// Samples JSONL to append to.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (0-based): the problems at positions I, I+N, I+2N, … of the
    /// selection; leaves FILE.shard.json, and `codeplan merge` joins the N files.
    #[arg(long, value_name = "I/N")]
    #[serde(skip)]
    pub shard: Option<String>,
}

/// `--prompt` values.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptArg {
    /// `[GEN_CODE]\nQUESTION:\n…\nANSWER:\n`
    Codeplan,
    /// The model's chat template.
    Chat,
    /// Two stages: a plan (`[GEN_PLAN]` prompt), then code from the `[GEN_CODE]` prompt with
    /// that plan after the question (the method's plan-then-code inference).
    #[value(name = "plan-then-code")]
    #[serde(rename = "plan-then-code")]
    PlanThenCode,
}

/// Runs `codeplan generate`.
pub fn run(mut args: GenerateArgs) -> Result<()> {
    if let Some(path) = args.config.clone() {
        let file: GenerateArgs = read_config(&path)?;
        args.model.merge(file.model);
        args.data.merge(file.data);
        args.n = args.n.or(file.n);
        args.temperature = args.temperature.or(file.temperature);
        args.top_p = args.top_p.or(file.top_p);
        args.top_k = args.top_k.or(file.top_k);
        args.seed = args.seed.or(file.seed);
        args.max_new_tokens = args.max_new_tokens.or(file.max_new_tokens);
        args.stop = args.stop.or(file.stop);
        args.prompt = args.prompt.or(file.prompt);
        args.max_prompt_tokens = args.max_prompt_tokens.or(file.max_prompt_tokens);
        args.out = args.out.or(file.out);
    }
    // Check every setting before loading anything, so a typo fails fast.
    let shard = parse_shard(args.shard.as_deref())?;
    let n = args.n.unwrap_or(1);
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let sampling = SamplingParams {
        temperature: args.temperature.unwrap_or(0.6),
        top_p: args.top_p.unwrap_or(0.95),
        top_k: args.top_k.unwrap_or(0),
        seed: args.seed.unwrap_or(0),
    };
    sampling
        .validate()
        .context("bad sampling settings (--temperature, --top-p)")?;
    let max_new_tokens = args.max_new_tokens.unwrap_or(512);
    if max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let Some(out) = args.out.clone() else {
        bail!("no output given: pass --out FILE (samples JSONL; reruns resume it)");
    };
    let (part, problems) = ShardPart::begin(
        shard,
        ShardRecord::path_for(&out, false),
        args.data.load()?,
        true,
    )?;
    let model = args.model.load()?;
    let options = SolveOptions {
        n,
        max_new_tokens,
        sampling,
        stop: args.stop.clone().unwrap_or_default(),
        prompt: match args.prompt {
            Some(PromptArg::Chat) => PromptStyle::Chat,
            Some(PromptArg::PlanThenCode) => PromptStyle::PlanThenCode,
            _ => PromptStyle::Codeplan,
        },
        max_prompt_tokens: args.max_prompt_tokens,
    };
    eprintln!(
        "generating {n} sample(s) for {} problem(s) with {} on {} into {}",
        problems.len(),
        model.name(),
        model.decoder().placement().describe(),
        out.display()
    );
    let bar = problems_bar(problems.len());
    let summary = solve_problems(&model, &problems, &options, &out, |p| {
        bar.set_position(p.problems_done as u64);
        let secs = p.elapsed.as_secs_f64();
        if secs > 0.0 {
            bar.set_message(format!(
                "{} tokens, {:.1} tok/s",
                p.generated_tokens,
                p.generated_tokens as f64 / secs
            ));
        }
    })
    .with_context(|| format!("generating into {}", out.display()))?;
    bar.finish_and_clear();
    let decode = summary.decode.as_secs_f64();
    let prefill = summary.prefill.as_secs_f64();
    println!(
        "{} problem(s) sampled, {} already done; {} tokens generated ({:.1} tok/s decode), {} prompt tokens ({:.1} tok/s prefill)",
        summary.generated,
        summary.already_done,
        summary.generated_tokens,
        if decode > 0.0 { summary.generated_tokens as f64 / decode } else { 0.0 },
        summary.prompt_tokens,
        if prefill > 0.0 { summary.prompt_tokens as f64 / prefill } else { 0.0 },
    );
    if !summary.truncated.is_empty() {
        println!(
            "warning: {} prompt(s) were cut to fit the prompt budget: {}",
            summary.truncated.len(),
            summary.truncated.join(", ")
        );
    }
    part.finish("generate", || {
        // Everything that decides the samples; shards merge only when these agree.
        Ok(json!({
            "codeplan_version": env!("CARGO_PKG_VERSION"),
            "model": model.name(),
            "model_sha256": sha256_path(model.path())?,
            "data_sha256": data_hashes(&args.data)?,
            "n": n,
            "max_new_tokens": max_new_tokens,
            "temperature": options.sampling.temperature,
            "top_p": options.sampling.top_p,
            "top_k": options.sampling.top_k,
            "seed": options.sampling.seed,
            "stop": options.stop,
            "prompt": format!("{:?}", options.prompt),
            "max_prompt_tokens": options.max_prompt_tokens,
        }))
    })?;
    println!("Wrote {}", out.display());
    Ok(())
}
