//! `codeplan distill`: the teacher writes solution plans, validated by running their code.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::json;

use codeplan_data::SHARD_RECORD;
use codeplan_teacher::ask::Stop;
use codeplan_teacher::budget::{table_price, Budget, Limits, Price};
use codeplan_teacher::client::{HttpConfig, HttpTeacher};
use codeplan_teacher::distill::{stop_message, Progress, Stage};
use codeplan_teacher::leak::LeakGuard;
use codeplan_teacher::local::LocalTeacher;
use codeplan_teacher::request::Sampling;
use codeplan_teacher::retry::RetryPolicy;
use codeplan_teacher::store::Store;
use codeplan_teacher::{
    distill, write_outputs, DistillConfig, NonePass, PlanSampling, Reasoning, Run, Source, Teacher,
    TeacherInfo, Templates,
};
use codeplan_train::data::sha256_path;

use crate::model_args::ModelArgs;
use crate::options::{data_hashes, parse_shard, read_config, DataArgs, JudgeArgs, ShardPart};
use crate::progress::stage_bar;

/// Arguments of `codeplan distill` (also readable from a TOML file with `--config`).
#[derive(Args, Debug, Default, Deserialize)]
#[command(after_help = "Examples:
  # against any OpenAI-compatible server (here: codeplan serve on this machine)
  codeplan distill --data data/apps/train.jsonl --teacher-url http://127.0.0.1:8080/v1 \\
      --teacher-model qwen2.5-coder-1.5b --plans-per-problem 4 --max-tokens 512 --out plans/
  # a local model in this process, no server
  codeplan distill --data data/apps/train.jsonl --teacher local:qwen2.5-coder-1.5b --out plans/
  # a paid API: the key is read from $OPENAI_API_KEY; see the cost first, then cap it
  codeplan distill --data data/apps/train.jsonl --teacher-url https://api.openai.com/v1 \\
      --teacher-model gpt-4o-mini --dry-run --out plans/
  codeplan distill ... --max-cost 2.50 --rpm 500 --tpm 200000 --out plans/
  # offline batch: export, run the file (OpenAI Batch API or vLLM run_batch), import, repeat
  codeplan distill ... --teacher-model gpt-4o-mini --batch-export requests.jsonl --out plans/
  codeplan distill ... --teacher-model gpt-4o-mini --batch-import results.jsonl --batch-export requests2.jsonl --out plans/

Writes to --out: plans.jsonl (the plans kept; `codeplan train --plans` reads it),
candidates.jsonl (every candidate and its fate), summary.json, summary.md, run.json and
ledger.jsonl (every answer, fsynced as it arrives). A rerun with the same settings sends no
request; a killed run resumes without losing or repeating a paid answer. Answers are also
kept in a shared cache (--cache-dir), keyed by teacher, messages, sampling and seed.

Validation EXECUTES the teacher's code: only inside the sandbox (see `codeplan --help`).
Exit status: 0 when done; 1 on an error, or when the run stopped at its budget (outputs for
the finished problems are written; rerun with a higher budget to continue).")]
#[serde(default, deny_unknown_fields)]
pub struct DistillArgs {
    /// TOML file with any of these options (flags override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// A local teacher: `local:NAME` (a fetched model) or `local:PATH` (GGUF or HF folder).
    #[arg(long, value_name = "local:NAME|PATH")]
    pub teacher: Option<String>,
    /// Base URL of an OpenAI-compatible API, up to /v1.
    #[arg(long, value_name = "URL")]
    pub teacher_url: Option<String>,
    /// The teacher's model name, as the API knows it.
    #[arg(long, value_name = "NAME")]
    pub teacher_model: Option<String>,
    /// Environment variable holding the API key [default: OPENAI_API_KEY, if set].
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Where fetched models live (for local teachers).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Where a local teacher runs: `cpu`, `cuda` or `cuda:N` (a build with `--features
    /// cuda`) [default: cpu].
    #[arg(long, value_name = "cpu|cuda[:N]")]
    pub device: Option<String>,
    /// Candidate plans per problem (K) [default: 4].
    #[arg(long)]
    pub plans_per_problem: Option<usize>,
    /// solutions: one per distinct reference solution; samples: K samples of one prompt;
    /// mixed: solutions first, then more samples [default: mixed].
    #[arg(long, value_enum)]
    pub plan_sampling: Option<PlanSamplingArg>,
    /// backward: explain a reference solution; forward: plan from the statement (ablation)
    /// [default: backward].
    #[arg(long, value_enum)]
    pub reasoning: Option<ReasoningArg>,
    /// Prompt templates (TOML; see `codeplan distill --print-templates`).
    #[arg(long, value_name = "FILE")]
    pub templates: Option<PathBuf>,
    /// Print the built-in templates (a starting point for --templates) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_templates: bool,
    /// Temperature of plan requests [default: 0.2].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Nucleus mass of plan and code requests [default: 1.0].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Most tokens of a plan [default: 512].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Temperature of validation-code requests [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub code_temperature: Option<f64>,
    /// Most tokens of validation code [default: 1024].
    #[arg(long)]
    pub code_max_tokens: Option<usize>,
    /// Base seed; every request derives its own [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep plans without validating them (no code requests, nothing run).
    #[arg(long)]
    #[serde(default)]
    pub no_validate: bool,
    /// A plan passes when its code passes this fraction of the tests [default: 1 = all].
    #[arg(long, value_name = "TAU", allow_negative_numbers = true)]
    pub min_pass_fraction: Option<f64>,
    /// When no plan of a problem passes: drop the problem, keep the best plan, or keep all
    /// marked unvalidated [default: drop].
    #[arg(long, value_enum)]
    pub when_none_pass: Option<NonePassArg>,
    /// Leak guard: allow code fences in plans.
    #[arg(long)]
    #[serde(default)]
    pub allow_fences: bool,
    /// Leak guard: reject plans copying this many consecutive solution lines; 0 = off [default: 2].
    #[arg(long, value_name = "N")]
    pub leak_lines: Option<usize>,
    /// Leak guard: reject plans copying this many consecutive solution tokens; 0 = off [default: 20].
    #[arg(long, value_name = "N")]
    pub leak_tokens: Option<usize>,
    /// Most requests in flight [default: 4; local teacher: 8].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Most requests per minute.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Most tokens per minute (prompt estimate + max tokens).
    #[arg(long)]
    pub tpm: Option<u32>,
    /// Seconds one attempt may take [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub request_timeout: Option<f64>,
    /// Retries of a failed request (429, 5xx, connection errors, timeouts) [default: 6].
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// First back-off delay, seconds; doubles each retry, with jitter [default: 0.5].
    #[arg(long, value_name = "SECONDS")]
    pub retry_base: Option<f64>,
    /// Stop cleanly before spending more than this, USD.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Stop cleanly after this many new requests.
    #[arg(long)]
    pub max_requests: Option<usize>,
    /// Price per million prompt tokens, USD (overrides the built-in table).
    #[arg(long, value_name = "USD")]
    pub price_in: Option<f64>,
    /// Price per million completion tokens, USD.
    #[arg(long, value_name = "USD")]
    pub price_out: Option<f64>,
    /// Print the requests, tokens and cost the run would take, and send nothing.
    #[arg(long)]
    #[serde(skip)]
    pub dry_run: bool,
    /// Write the pending requests as an OpenAI Batch JSONL file instead of sending them.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub batch_export: Option<PathBuf>,
    /// Read an OpenAI Batch results file and use its answers.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub batch_import: Option<PathBuf>,
    /// Shared answer cache [default: $CODEPLAN_TEACHER_CACHE, else ~/.cache/codeplan/teacher].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use only this run's ledger, not the shared cache.
    #[arg(long)]
    #[serde(default)]
    pub no_cache: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub judge: JudgeArgs,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Distill only shard I of N (0-based): the problems at positions I, I+N, I+2N, … of the
    /// selection; leaves DIR/shard.json, and `codeplan merge` joins the N folders.
    #[arg(long, value_name = "I/N")]
    #[serde(skip)]
    pub shard: Option<String>,
}

/// `--plan-sampling` values.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanSamplingArg {
    /// One plan per distinct reference solution.
    Solutions,
    /// K samples of one prompt.
    Samples,
    /// Distinct solutions first, then more samples.
    Mixed,
}

/// `--reasoning` values.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningArg {
    /// Explain a known-correct solution.
    Backward,
    /// Plan from the problem statement alone.
    Forward,
}

/// `--when-none-pass` values.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonePassArg {
    /// Keep no plan for the problem.
    Drop,
    /// Keep the plan whose code passed most tests.
    Best,
    /// Keep every plan, marked unvalidated.
    Unvalidated,
}

impl DistillArgs {
    fn merge(&mut self, f: DistillArgs) {
        self.data.merge(f.data);
        self.judge.merge(f.judge);
        macro_rules! or {
            ($($field:ident),*) => { $( self.$field = self.$field.take().or(f.$field); )* };
        }
        or!(
            teacher,
            teacher_url,
            teacher_model,
            api_key_env,
            models_dir,
            device,
            plans_per_problem,
            plan_sampling,
            reasoning,
            templates,
            temperature,
            top_p,
            max_tokens,
            code_temperature,
            code_max_tokens,
            seed,
            min_pass_fraction,
            when_none_pass,
            leak_lines,
            leak_tokens,
            concurrency,
            rpm,
            tpm,
            request_timeout,
            max_retries,
            retry_base,
            max_cost,
            max_requests,
            price_in,
            price_out,
            cache_dir,
            out
        );
        self.no_validate |= f.no_validate;
        self.allow_fences |= f.allow_fences;
        self.no_cache |= f.no_cache;
    }

    /// The run's settings, checked before anything is loaded or asked.
    pub(crate) fn settings(&self) -> Result<DistillConfig> {
        let sampling = |temperature: f64, max_tokens: usize, flag: &str| -> Result<Sampling> {
            if !(temperature >= 0.0 && temperature.is_finite()) {
                bail!("{flag} must be a number ≥ 0, got {temperature}");
            }
            let top_p = self.top_p.unwrap_or(1.0);
            if !(top_p > 0.0 && top_p <= 1.0) {
                bail!("--top-p must be in (0, 1], got {top_p}");
            }
            if max_tokens == 0 {
                bail!("the token limits (--max-tokens, --code-max-tokens) must be at least 1");
            }
            Ok(Sampling {
                temperature,
                top_p,
                max_tokens,
            })
        };
        let k = self.plans_per_problem.unwrap_or(4);
        if k == 0 {
            bail!("--plans-per-problem must be at least 1");
        }
        let tau = self.min_pass_fraction.unwrap_or(1.0);
        if !(tau > 0.0 && tau <= 1.0) {
            bail!("--min-pass-fraction must be in (0, 1], got {tau}");
        }
        self.judge.validate()?;
        let defaults = LeakGuard::default();
        Ok(DistillConfig {
            reasoning: match self.reasoning {
                Some(ReasoningArg::Forward) => Reasoning::Forward,
                _ => Reasoning::Backward,
            },
            plans_per_problem: k,
            sampling: match self.plan_sampling {
                Some(PlanSamplingArg::Solutions) => PlanSampling::Solutions,
                Some(PlanSamplingArg::Samples) => PlanSampling::Samples,
                _ => PlanSampling::Mixed,
            },
            plan: sampling(
                self.temperature.unwrap_or(0.2),
                self.max_tokens.unwrap_or(512),
                "--temperature",
            )?,
            code: sampling(
                self.code_temperature.unwrap_or(0.0),
                self.code_max_tokens.unwrap_or(1024),
                "--code-temperature",
            )?,
            seed: self.seed.unwrap_or(0),
            validate: !self.no_validate,
            min_pass_fraction: tau,
            none_pass: match self.when_none_pass {
                Some(NonePassArg::Best) => NonePass::Best,
                Some(NonePassArg::Unvalidated) => NonePass::Unvalidated,
                _ => NonePass::Drop,
            },
            leak: LeakGuard {
                reject_fences: !self.allow_fences,
                max_copied_lines: self.leak_lines.unwrap_or(defaults.max_copied_lines),
                min_line_chars: defaults.min_line_chars,
                max_copied_tokens: self.leak_tokens.unwrap_or(defaults.max_copied_tokens),
            },
            judge: self.judge.choice(),
            limits: self.judge.limits()?,
        })
    }
}

/// Which teacher the flags name.
enum TeacherChoice {
    Local(String),
    Http {
        url: String,
        model: String,
    },
    /// Only a model name: batch files and dry runs need no server.
    Offline {
        model: String,
    },
}

fn teacher_choice(args: &DistillArgs) -> Result<TeacherChoice> {
    match (&args.teacher, &args.teacher_url, &args.teacher_model) {
        (Some(t), None, _) => match t.strip_prefix("local:") {
            Some(spec) if !spec.is_empty() => Ok(TeacherChoice::Local(spec.to_owned())),
            _ => bail!(
                "--teacher must be local:NAME or local:PATH (got {t:?}); for a server use \
                 --teacher-url URL --teacher-model NAME"
            ),
        },
        (Some(_), Some(_), _) => bail!("give either --teacher local:… or --teacher-url, not both"),
        (None, Some(url), Some(model)) => Ok(TeacherChoice::Http {
            url: url.clone(),
            model: model.clone(),
        }),
        (None, Some(_), None) => bail!("--teacher-url needs --teacher-model NAME"),
        (None, None, Some(model)) => {
            if args.dry_run || args.batch_export.is_some() {
                Ok(TeacherChoice::Offline {
                    model: model.clone(),
                })
            } else {
                bail!(
                    "--teacher-model needs --teacher-url URL (or --dry-run / --batch-export, which send nothing)"
                )
            }
        }
        (None, None, None) => bail!(
            "no teacher given: pass --teacher-url URL --teacher-model NAME, or --teacher local:NAME"
        ),
    }
}

/// Runs `codeplan distill`.
pub fn run(mut args: DistillArgs) -> Result<()> {
    if args.print_templates {
        print!("{}", codeplan_teacher::prompts::DEFAULT_TEMPLATES);
        return Ok(());
    }
    if let Some(path) = args.config.clone() {
        let file: DistillArgs = read_config(&path)?;
        args.merge(file);
    }
    // Everything that can be wrong in the settings fails before any loading or asking.
    let shard = parse_shard(args.shard.as_deref())?;
    let config = args.settings()?;
    let choice = teacher_choice(&args)?;
    let Some(out) = args.out.clone() else {
        bail!("no output folder given: pass --out DIR (reruns resume it)");
    };
    let templates = match &args.templates {
        Some(path) => Templates::load(path)?,
        None => Templates::defaults(),
    };
    let price = match (args.price_in, args.price_out) {
        (Some(input), Some(output)) => {
            if !(input >= 0.0 && output >= 0.0 && input.is_finite() && output.is_finite()) {
                bail!("--price-in and --price-out must be numbers ≥ 0");
            }
            Some(Price { input, output })
        }
        (None, None) => match &choice {
            TeacherChoice::Local(_) => Some(Price {
                input: 0.0,
                output: 0.0,
            }),
            TeacherChoice::Http { model, .. } | TeacherChoice::Offline { model } => {
                table_price(model)
            }
        },
        _ => bail!("give both --price-in and --price-out (USD per million tokens)"),
    };
    if let Some(c) = args.max_cost {
        if !(c > 0.0 && c.is_finite()) {
            bail!("--max-cost must be a positive number of USD, got {c}");
        }
        if price.is_none() {
            bail!(
                "--max-cost needs a price: the model is not in the built-in table; give \
                 --price-in and --price-out (USD per million tokens)"
            );
        }
    }
    if args.max_requests == Some(0) {
        bail!("--max-requests must be at least 1");
    }
    let batch_results = args
        .batch_import
        .as_deref()
        .map(codeplan_teacher::batch::import)
        .transpose()?;
    let (part, problems) = ShardPart::begin(
        shard,
        out.join(SHARD_RECORD),
        args.data.load()?,
        !args.dry_run,
    )?;

    let (teacher, info) = connect(&args, &choice)?;
    let cache_dir = if args.no_cache {
        None
    } else {
        Some(cache_root(args.cache_dir.as_deref())?)
    };
    let store = Store::open(&out, cache_dir.as_deref(), &info.identity)?;
    let budget = Budget::new(
        Limits {
            max_requests: args.max_requests,
            max_cost: args.max_cost,
        },
        price,
    );
    let source = if args.dry_run {
        Source::DryRun
    } else if let Some(path) = &args.batch_export {
        Source::Export(path.clone())
    } else {
        match &teacher {
            Some(t) => Source::Teacher(t),
            None => unreachable!("an offline teacher comes only with --dry-run or --batch-export"),
        }
    };
    let pool = if config.validate && !args.dry_run {
        Some(args.judge.pool()?)
    } else {
        None
    };
    eprintln!(
        "distilling plans for {} problem(s) with {} ({} reasoning, {} candidate(s) each) into {}",
        problems.len(),
        info.model,
        config.reasoning.name(),
        config.plans_per_problem,
        out.display()
    );
    let started = std::time::Instant::now();
    let bars: Mutex<Option<(Stage, ProgressBar)>> = Mutex::new(None);
    let report = distill(
        &Run {
            problems: &problems,
            config: &config,
            templates: &templates,
            teacher: &info,
            store: &store,
            budget: &budget,
            source,
            imported: batch_results.as_ref(),
            pool: pool.as_ref(),
        },
        &|p: Progress| show(&bars, p),
    );
    if let Some((_, bar)) = bars.lock().expect("bar lock").take() {
        bar.finish_and_clear();
    }
    let report = report?;

    if let Some(e) = &report.estimate {
        println!("Dry run: nothing was sent.");
        println!(
            "  requests to send: {} plan + {} validation (at most); {} answer(s) already on disk",
            e.plan_requests, e.code_requests, e.reused
        );
        println!(
            "  tokens: about {} prompt, at most {} completion",
            e.prompt_tokens, e.max_completion_tokens
        );
        match e.max_cost {
            Some(c) => println!("  cost: at most ${c:.4}"),
            None => println!(
                "  cost: unknown (model not in the price table; give --price-in/--price-out)"
            ),
        }
        return Ok(());
    }
    if let Some((path, n)) = &report.exported {
        println!(
            "Wrote {n} pending request(s) to {} (OpenAI Batch JSONL). Run it (OpenAI Batch API, \
             or vLLM: python -m vllm.entrypoints.openai.run_batch -i {} -o results.jsonl --model …), \
             then rerun this command with --batch-import results.jsonl (and --batch-export for the next stage).",
            path.display(),
            path.display()
        );
        return Ok(());
    }
    write_outputs(&report, &out)?;
    write_run_json(&args, &config, &info, &report, &out, started.elapsed())?;
    let s = &report.summary;
    print!("{}", s.markdown());
    println!("Wrote {}", out.join("plans.jsonl").display());
    if s.stopped.is_none() {
        // Everything that decides the plans (not the URL: each shard may ask its own server).
        part.finish("distill", || {
            Ok(json!({"codeplan_version": env!("CARGO_PKG_VERSION"), "teacher": info,
                "config": config, "template_hash": s.template_hash, "data_sha256": data_hashes(&args.data)?}))
        })?;
    }
    match &s.stopped {
        Some(stop @ Stop::Budget) => bail!("{}", stop_message(stop, &budget)),
        Some(stop @ Stop::Fatal { .. }) => bail!(
            "the teacher cannot answer: {} (answers so far are kept in {})",
            stop_message(stop, &budget),
            store.ledger_path().display()
        ),
        None => Ok(()),
    }
}

fn show(bars: &Mutex<Option<(Stage, ProgressBar)>>, p: Progress) {
    let mut guard = bars.lock().expect("bar lock");
    if guard.as_ref().is_none_or(|(s, _)| *s != p.stage) {
        if let Some((_, old)) = guard.take() {
            old.finish_and_clear();
        }
        let bar = stage_bar(
            p.total,
            match p.stage {
                Stage::Plans => "plans",
                Stage::Code => "code",
                Stage::Judge => "judge",
            },
        );
        *guard = Some((p.stage, bar));
    }
    let (_, bar) = guard.as_ref().expect("just set");
    bar.set_position(p.done as u64);
    bar.set_message(match p.stage {
        Stage::Plans => format!("plan requests: {} sent, {} failed", p.sent, p.failed),
        Stage::Code => format!("validation requests: {} sent, {} failed", p.sent, p.failed),
        Stage::Judge => "judging validation code".into(),
    });
}

/// Builds the teacher and its identity.
fn connect(args: &DistillArgs, choice: &TeacherChoice) -> Result<(Option<Teacher>, TeacherInfo)> {
    Ok(match choice {
        TeacherChoice::Local(spec) => {
            let model = ModelArgs {
                model: Some(spec.clone()),
                models_dir: args.models_dir.clone(),
                f32: false,
                device: args.device.clone(),
            }
            .load()?;
            // A changed model file is a new teacher: its answers are not the old one's.
            let identity = format!(
                "local:{}:{}",
                model.name(),
                &sha256_path(model.path())?[..16]
            );
            let name = model.name().to_owned();
            let teacher = LocalTeacher::new(model, args.concurrency.unwrap_or(8));
            (
                Some(Teacher::Local(teacher)),
                TeacherInfo {
                    model: name,
                    identity,
                },
            )
        }
        TeacherChoice::Http { url, model } => {
            let api_key = match &args.api_key_env {
                Some(var) => Some(std::env::var(var).with_context(|| {
                    format!("--api-key-env {var}: the environment variable is not set")
                })?),
                None => std::env::var("OPENAI_API_KEY").ok(),
            };
            let timeout = args.request_timeout.unwrap_or(120.0);
            let base = args.retry_base.unwrap_or(0.5);
            if !(timeout > 0.0 && timeout.is_finite() && base >= 0.0 && base.is_finite()) {
                bail!("--request-timeout must be > 0 and --retry-base ≥ 0 seconds");
            }
            let teacher = HttpTeacher::new(HttpConfig {
                base_url: url.clone(),
                api_key,
                timeout: Duration::from_secs_f64(timeout),
                retry: RetryPolicy {
                    max_retries: args.max_retries.unwrap_or(6),
                    base: Duration::from_secs_f64(base),
                    ..RetryPolicy::default()
                },
                concurrency: args.concurrency.unwrap_or(4),
                requests_per_minute: args.rpm,
                tokens_per_minute: args.tpm,
            })?;
            (
                Some(Teacher::Http(Box::new(teacher))),
                TeacherInfo {
                    model: model.clone(),
                    identity: format!("openai-compatible:{model}"),
                },
            )
        }
        TeacherChoice::Offline { model } => (
            None,
            TeacherInfo {
                model: model.clone(),
                identity: format!("openai-compatible:{model}"),
            },
        ),
    })
}

/// The shared cache folder.
fn cache_root(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CODEPLAN_TEACHER_CACHE") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .context("cannot find the cache folder: HOME is not set (pass --cache-dir DIR)")?;
    Ok(PathBuf::from(home).join(".cache/codeplan/teacher"))
}

fn write_run_json(
    args: &DistillArgs,
    config: &DistillConfig,
    info: &TeacherInfo,
    report: &codeplan_teacher::Report,
    out: &Path,
    elapsed: Duration,
) -> Result<()> {
    let data = args
        .data
        .data
        .iter()
        .map(|p| Ok((p.display().to_string(), sha256_path(p)?)))
        .collect::<Result<std::collections::BTreeMap<_, _>>>()?;
    let run = json!({
        "codeplan_version": env!("CARGO_PKG_VERSION"),
        "command": "distill",
        "teacher": info,
        "teacher_url": args.teacher_url,
        "config": config,
        "template_hash": report.summary.template_hash,
        "templates_file": args.templates,
        "sha256": {"data": data},
        "selection": {"ids": args.data.ids, "difficulty": args.data.difficulty, "limit": args.data.limit},
        "wall_s": elapsed.as_secs_f64(),
    });
    let path = out.join("run.json");
    std::fs::write(&path, serde_json::to_string_pretty(&run)?)
        .with_context(|| format!("writing {}", path.display()))
}
