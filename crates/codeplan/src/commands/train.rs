//! `codeplan train`: fine-tune the student on code and plans (or code only, the baseline).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use codeplan_model::store::{models_root, resolve_model};
use codeplan_train::batches::Batching;
use codeplan_train::config::{ModeKind, TaskWeights, TrainConfig};
use codeplan_train::data::{prepare, sha256_path, Prepared};
use codeplan_train::examples::{length_stats, render_marked, task_name, PromptStyle};
use codeplan_train::export::{write_exports, ExportFormat};
use codeplan_train::lora::LoraTarget;
use codeplan_train::optim::LrSchedule;
use codeplan_train::trainer::{config_hash, Event, Trainer};

/// Arguments of `codeplan train` (every setting also readable from a TOML file; flags win).
#[derive(Args, Debug, Default)]
#[command(after_help = "Examples:
  # CodePLAN: code and plan tasks, LoRA on every linear layer
  codeplan train --model qwen2.5-coder-0.5b --data data/apps/train.jsonl --plans plans.jsonl \\
      --tasks code,plan --lora-rank 16 --max-steps 200 --out runs/codeplan
  # the conventional fine-tuning baseline: code only
  codeplan train --model qwen2.5-coder-0.5b --data data/apps/train.jsonl --tasks code --out runs/baseline
  # see what is trained (target tokens marked ⟦…⟧) and how long examples are
  codeplan train --config train.toml --inspect 3
  # continue a run that was stopped or killed
  codeplan train --config train.toml --resume
  # also write the merged model as GGUF for llama.cpp (needs a GGUF --model)
  codeplan train --config train.toml --export peft,hf,gguf-q8_0
  # export a finished run again in other formats (no training happens)
  codeplan train --config train.toml --resume --export gguf-f16

Settings in a TOML file use the same names with underscores (lora_rank = 16, max_steps = 200,
weights = { code = 1.0, plan = 1.0 }, adamw = { weight_decay = 0.05 }).
Writes to --out: metrics.jsonl, loss.svg, run.json, checkpoints/step-NNNNNNNN/, and the exports:
adapter/ (PEFT), model/ (Hugging Face, merged), model-f16.gguf, model-q8_0.gguf.")]
pub struct TrainArgs {
    /// TOML file with any of these settings (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The student: a fetched model's name, a .gguf file or a Hugging Face folder.
    #[arg(long, value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// Where fetched models live [default: $CODEPLAN_MODELS, else ~/.cache/codeplan/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Training problems (repeatable): their reference solutions are the code task's targets.
    #[arg(long = "data", value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Only these problem ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<String>>,
    /// Only these difficulties (comma-separated: introductory, interview, competition; unrated for
    /// problems without levels, as in HumanEval and MBPP).
    #[arg(long, value_delimiter = ',')]
    pub difficulty: Option<Vec<String>>,
    /// At most this many problems (the first ones, in file order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Plans JSONL (`{"problem_id", "plan"}` per line, as `codeplan distill` writes).
    #[arg(long, value_name = "FILE")]
    pub plans: Option<PathBuf>,
    /// Tasks, comma-separated: code, plan [default: code,plan].
    #[arg(long, value_delimiter = ',')]
    pub tasks: Option<Vec<String>>,
    /// Loss weight per task, e.g. code=1,plan=0.5 [default: code=1,plan=1].
    #[arg(long, value_name = "TASK=W,...")]
    pub weights: Option<String>,
    /// Prompt format: the paper's (codeplan) or the model's chat template [default: codeplan].
    #[arg(long, value_enum)]
    pub prompt: Option<PromptArg>,
    /// Train the plan task through its own copy of the output head (the paper's ablation;
    /// dropped at inference).
    #[arg(long)]
    pub plan_head: bool,
    /// lora (base frozen) or full fine-tuning [default: lora].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// LoRA rank [default: 16].
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// LoRA alpha; the update is scaled by alpha/rank [default: 32].
    #[arg(long)]
    pub lora_alpha: Option<f32>,
    /// LoRA dropout [default: 0.05].
    #[arg(long)]
    pub lora_dropout: Option<f32>,
    /// LoRA target modules, comma-separated [default: all: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj].
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Option<Vec<String>>,
    /// Longest example in tokens (and the row length when packing) [default: 1024].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Rows per micro-batch [default: 1].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per update [default: 1].
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// pack (several examples per row) or bucket (one per row, similar lengths) [default: pack].
    #[arg(long, value_enum)]
    pub batching: Option<BatchingArg>,
    /// Updates to run [default: 100].
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Peak learning rate [default: 2e-4].
    #[arg(long)]
    pub lr: Option<f64>,
    /// constant, linear or cosine (after warm-up) [default: cosine].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Linear warm-up updates [default: 10].
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// AdamW weight decay (not on biases and norms) [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip the gradient norm to this; 0 = off [default: 1].
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// Seed for adapter init, data order and dropout [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Share of problems held out for validation [default: 0.05].
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Validation loss every N updates [default: 50].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Validation micro-batches per evaluation [default: 8].
    #[arg(long)]
    pub val_batches: Option<usize>,
    /// Sample held-out problems every N updates and judge them in the sandbox, logging
    /// eval/pass@1 beside the losses; 0 = never [default: 0]. EXECUTES model-written code
    /// (sandboxed, see `codeplan --help`).
    #[arg(long)]
    pub eval_pass_every: Option<u64>,
    /// Held-out problems sampled for that evaluation [default: 10].
    #[arg(long)]
    pub eval_problems: Option<usize>,
    /// New tokens per sample in that evaluation [default: 256].
    #[arg(long)]
    pub eval_max_new_tokens: Option<usize>,
    /// Checkpoint every N updates (and at the end) [default: 50].
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Checkpoints to keep [default: 2].
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Output folder [default: runs/train].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// What to write into --out after training, comma-separated: peft (the adapter; LoRA only),
    /// hf (merged Hugging Face folder), gguf-f16, gguf-q8_0 (need a GGUF model), or none
    /// [default: peft,hf].
    #[arg(long, value_delimiter = ',', value_name = "FORMATS")]
    pub export: Option<Vec<String>>,
    /// Print N rendered examples with the trained tokens marked ⟦…⟧ and the length
    /// statistics, then stop (no training).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "2")]
    pub inspect: Option<usize>,
}

/// `--prompt` values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum PromptArg {
    /// `[GEN_CODE]` / `[GEN_PLAN]` prompts, target + end-of-text.
    Codeplan,
    /// The model's chat template.
    Chat,
}

/// `--mode` values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ModeArg {
    /// Frozen base + low-rank adapters.
    Lora,
    /// Every weight.
    Full,
}

/// `--batching` values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum BatchingArg {
    /// Several examples per row.
    Pack,
    /// One example per row, similar lengths together.
    Bucket,
}

/// `--schedule` values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ScheduleArg {
    /// Constant after warm-up.
    Constant,
    /// Linear decay to 0.
    Linear,
    /// Cosine decay to 0.
    Cosine,
}

fn parse_weights(text: &str) -> Result<TaskWeights> {
    let mut w = TaskWeights::default();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((task, value)) = part.split_once('=') else {
            bail!("--weights: `{part}` is not TASK=WEIGHT (e.g. code=1,plan=0.5)");
        };
        let value: f32 = value
            .trim()
            .parse()
            .with_context(|| format!("--weights: `{value}` is not a number"))?;
        match task.trim() {
            "code" => w.code = value,
            "plan" => w.plan = value,
            other => bail!("--weights: unknown task `{other}` (the tasks are code and plan)"),
        }
    }
    Ok(w)
}

/// The file's settings with every given flag applied on top.
fn resolve(args: &TrainArgs) -> Result<(TrainConfig, String)> {
    let mut c = match &args.config {
        Some(path) => TrainConfig::from_toml_file(path)?,
        None => TrainConfig::default(),
    };
    let model_spec = match &args.model {
        Some(m) => m.clone(),
        None if !c.model.as_os_str().is_empty() => c.model.display().to_string(),
        None => bail!(
            "no model given: pass --model NAME|PATH (e.g. --model smollm2-135m after `codeplan models fetch smollm2-135m`)"
        ),
    };
    c.model = PathBuf::from(&model_spec);
    if !args.data.is_empty() {
        c.data = args.data.clone();
    }
    if args.ids.is_some() {
        c.ids = args.ids.clone();
    }
    if args.difficulty.is_some() {
        c.difficulty = args.difficulty.clone();
    }
    if args.limit.is_some() {
        c.limit = args.limit;
    }
    if args.plans.is_some() {
        c.plans = args.plans.clone();
    }
    if let Some(t) = &args.tasks {
        c.tasks = t.iter().map(|s| s.trim().to_owned()).collect();
    }
    if let Some(w) = &args.weights {
        c.weights = parse_weights(w)?;
    }
    if let Some(p) = args.prompt {
        c.prompt = match p {
            PromptArg::Codeplan => PromptStyle::Codeplan,
            PromptArg::Chat => PromptStyle::Chat,
        };
    }
    c.plan_head |= args.plan_head;
    if let Some(m) = args.mode {
        c.mode = match m {
            ModeArg::Lora => ModeKind::Lora,
            ModeArg::Full => ModeKind::Full,
        };
    }
    c.lora_rank = args.lora_rank.unwrap_or(c.lora_rank);
    c.lora_alpha = args.lora_alpha.unwrap_or(c.lora_alpha);
    c.lora_dropout = args.lora_dropout.unwrap_or(c.lora_dropout);
    if let Some(targets) = &args.lora_targets {
        c.lora_targets = targets
            .iter()
            .map(|t| t.trim().parse::<LoraTarget>())
            .collect::<Result<_, _>>()?;
    }
    c.max_len = args.max_len.unwrap_or(c.max_len);
    c.batch_size = args.batch_size.unwrap_or(c.batch_size);
    c.grad_accum = args.grad_accum.unwrap_or(c.grad_accum);
    if let Some(b) = args.batching {
        c.batching = match b {
            BatchingArg::Pack => Batching::Pack,
            BatchingArg::Bucket => Batching::Bucket,
        };
    }
    c.max_steps = args.max_steps.unwrap_or(c.max_steps);
    c.lr = args.lr.unwrap_or(c.lr);
    if let Some(s) = args.schedule {
        c.schedule = match s {
            ScheduleArg::Constant => LrSchedule::Constant,
            ScheduleArg::Linear => LrSchedule::Linear,
            ScheduleArg::Cosine => LrSchedule::Cosine,
        };
    }
    c.warmup_steps = args.warmup_steps.unwrap_or(c.warmup_steps);
    c.adamw.weight_decay = args.weight_decay.unwrap_or(c.adamw.weight_decay);
    c.clip_grad_norm = args.clip_grad_norm.unwrap_or(c.clip_grad_norm);
    c.seed = args.seed.unwrap_or(c.seed);
    c.val_fraction = args.val_fraction.unwrap_or(c.val_fraction);
    c.eval_every = args.eval_every.unwrap_or(c.eval_every);
    c.val_batches = args.val_batches.unwrap_or(c.val_batches);
    c.save_every = args.save_every.unwrap_or(c.save_every);
    c.eval_pass_every = args.eval_pass_every.unwrap_or(c.eval_pass_every);
    c.eval_problems = args.eval_problems.unwrap_or(c.eval_problems);
    c.eval_max_new_tokens = args.eval_max_new_tokens.unwrap_or(c.eval_max_new_tokens);
    c.keep_checkpoints = args.keep_checkpoints.unwrap_or(c.keep_checkpoints);
    if let Some(out) = &args.out {
        c.out = out.clone();
    }
    if let Some(formats) = &args.export {
        c.export = formats
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty() && *f != "none")
            .map(str::parse::<ExportFormat>)
            .collect::<Result<_, _>>()?;
    }
    c.validate()?;
    // Resolved last, so that a bad setting is reported even when the model is missing too.
    let root = models_root(args.models_dir.as_deref())?;
    c.model = resolve_model(&model_spec, &root)?.path().to_owned();
    Ok((c, model_spec))
}

fn inspect(prepared: &Prepared, config: &TrainConfig, n: usize) -> Result<()> {
    let mut shown = 0;
    for task in ["code", "plan"] {
        for e in prepared
            .train
            .iter()
            .filter(|e| task_name(e.task) == task)
            .take(n)
        {
            println!(
                "── {task} example, problem {} ({} prompt + {} trained tokens{}) ──",
                e.problem_id,
                e.prompt_len,
                e.target_len(),
                if e.truncated {
                    ", TRUNCATED at --max-len"
                } else {
                    ""
                }
            );
            println!("{}\n", render_marked(e, &prepared.tokenizer)?);
            shown += 1;
        }
    }
    println!("Trained tokens are between ⟦ and ⟧ (the end-of-text token included). {shown} example(s) shown.\n");
    println!(
        "{:<6} {:>8} {:>6} {:>7} {:>6} {:>6} {:>12} {:>10}",
        "task", "examples", "min", "median", "p95", "max", "mean target", "truncated"
    );
    for (task, s) in length_stats(&prepared.train) {
        println!(
            "{:<6} {:>8} {:>6} {:>7} {:>6} {:>6} {:>12.1} {:>10}",
            task, s.count, s.min, s.median, s.p95, s.max, s.mean_target, s.truncated
        );
    }
    println!(
        "\n{} training and {} validation examples from {} + {} problems; max length {} tokens.",
        prepared.train.len(),
        prepared.val.len(),
        prepared.problems.0,
        prepared.problems.1,
        config.max_len
    );
    if !prepared.dropped.is_empty() {
        println!("{} example(s) left out:", prepared.dropped.len());
        for d in prepared.dropped.iter().take(10) {
            println!(
                "  problem {} ({}): {}",
                d.problem_id,
                task_name(d.task),
                d.reason
            );
        }
    }
    Ok(())
}

/// Runs `codeplan train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (config, model_spec) = resolve(&args)?;
    let prepared = prepare(&config)?;
    if let Some(n) = args.inspect {
        return inspect(&prepared, &config, n);
    }
    let out = config.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let has_checkpoint = !codeplan_train::checkpoint::list(&out.join("checkpoints"))?.is_empty();
    if has_checkpoint && !args.resume {
        bail!(
            "{} already holds checkpoints of a run: pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    let run_json = json!({
        "codeplan_version": env!("CARGO_PKG_VERSION"),
        "model": model_spec,
        "config": config,
        "config_hash": config_hash(&config),
        "examples": { "train": prepared.train.len(), "val": prepared.val.len(), "dropped": prepared.dropped.len() },
        "problems": { "train": prepared.problems.0, "val": prepared.problems.1 },
        "length_stats": length_stats(&prepared.train),
        "sha256": {
            "model": sha256_path(&config.model)?,
            "data": config.data.iter().map(|p| Ok((p.display().to_string(), sha256_path(p)?))).collect::<Result<std::collections::BTreeMap<_, _>>>()?,
            "plans": config.plans.as_deref().map(sha256_path).transpose()?,
        },
    });
    let run_path = out.join("run.json");
    std::fs::write(&run_path, serde_json::to_string_pretty(&run_json)?)
        .with_context(|| format!("writing {}", run_path.display()))?;
    eprintln!(
        "training {} ({:?}) on {} examples ({} validation), {} updates → {}",
        model_spec,
        config.mode,
        prepared.train.len(),
        prepared.val.len(),
        config.max_steps,
        out.display()
    );
    let mut trainer = Trainer::new(config.clone(), &prepared, args.resume)?;
    let bar = ProgressBar::new(config.max_steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} updates (ETA {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut judge = if config.eval_pass_every > 0 {
        Some(PassAtOne::new(&config, &prepared)?)
    } else {
        None
    };
    let mut evaluate = |model: &codeplan_train::model::TrainableModel,
                        step: u64|
     -> codeplan_train::Result<std::collections::BTreeMap<String, f64>> {
        let judge = judge.as_mut().expect("only called when evaluation is on");
        judge.run(model, step).map_err(|e| {
            codeplan_train::TrainError::Input(format!("evaluation at update {step}: {e:#}"))
        })
    };
    let evaluator: Option<&mut codeplan_train::trainer::Evaluator<'_>> =
        if config.eval_pass_every > 0 {
            Some(&mut evaluate)
        } else {
            None
        };
    trainer.run_with(
        &mut |event| match event {
            Event::Ready {
                trainable,
                total,
                start_step,
            } => {
                bar.set_position(start_step);
                bar.reset_eta();
                let resumed = if start_step > 0 {
                    format!("; resumed after update {start_step}")
                } else {
                    String::new()
                };
                bar.suspend(|| eprintln!("{trainable} trained parameters of {total}{resumed}"));
            }
            Event::Step(m) => {
                bar.set_position(m.step);
                bar.set_message(format!(
                    "loss {:.4} lr {:.2e} {:.0} tok/s",
                    m.loss, m.lr, m.tokens_per_s
                ));
            }
            Event::Validation { step, losses } => {
                let parts: Vec<String> =
                    losses.iter().map(|(t, l)| format!("{t} {l:.4}")).collect();
                bar.suspend(|| eprintln!("update {step}: validation loss {}", parts.join(", ")));
            }
            Event::Evaluation { step, metrics } => {
                let parts: Vec<String> =
                    metrics.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
                bar.suspend(|| eprintln!("update {step}: {}", parts.join(", ")));
            }
            Event::Checkpoint { step, path } => {
                bar.suspend(|| eprintln!("update {step}: checkpoint {}", path.display()));
            }
        },
        evaluator,
    )?;
    bar.finish_and_clear();
    // ── exports ──
    let report = write_exports(
        trainer.model(),
        &config.model,
        &model_spec,
        &config.export,
        &out,
    )?;
    for (format, path) in &report.written {
        println!("Exported {}: {}", format.name(), path.display());
    }
    for (format, why) in &report.skipped {
        println!("Skipped export {}: {why}", format.name());
    }
    // ── end of exports ──
    let plot = out.join("loss.svg");
    codeplan_train::metrics::plot_losses(&out.join("metrics.jsonl"), &plot, "training loss")?;
    println!(
        "Trained {} updates. Metrics: {}  Plot: {}  Checkpoints: {}",
        trainer.step(),
        out.join("metrics.jsonl").display(),
        plot.display(),
        trainer.checkpoints().display()
    );
    Ok(())
}

/// Samples held-out problems with the weights being trained and judges them in the sandbox.
struct PassAtOne {
    problems: Vec<codeplan_data::Problem>,
    tokenizer: codeplan_model::tokenizer::Tokenizer,
    template: Option<codeplan_model::chat::ChatTemplate>,
    pool: codeplan_exec::pool::Pool,
    options: codeplan_model::solve::SolveOptions,
    out: PathBuf,
}

impl PassAtOne {
    fn new(config: &TrainConfig, prepared: &Prepared) -> Result<Self> {
        let problems: Vec<_> = prepared
            .val_problems
            .iter()
            .take(config.eval_problems)
            .cloned()
            .collect();
        if problems.is_empty() {
            bail!("--eval-pass-every needs held-out problems: raise --val-fraction");
        }
        let pool = crate::options::JudgeArgs::default().pool()?;
        Ok(PassAtOne {
            problems,
            tokenizer: prepared.tokenizer.clone(),
            template: prepared.template.clone(),
            pool,
            options: codeplan_model::solve::SolveOptions {
                n: 1,
                max_new_tokens: config.eval_max_new_tokens,
                // Greedy: one sample per problem gives pass@1 without sampling noise.
                sampling: codeplan_model::SamplingParams {
                    temperature: 0.0,
                    top_p: 1.0,
                    top_k: 0,
                    seed: config.seed,
                },
                stop: Vec::new(),
                prompt: match config.prompt {
                    PromptStyle::Codeplan => codeplan_model::solve::PromptStyle::Codeplan,
                    PromptStyle::Chat => codeplan_model::solve::PromptStyle::Chat,
                },
                max_prompt_tokens: None,
            },
            out: config.out.join("eval"),
        })
    }

    fn run(
        &mut self,
        model: &codeplan_train::model::TrainableModel,
        step: u64,
    ) -> Result<std::collections::BTreeMap<String, f64>> {
        let dir = self.out.join(format!("step-{step:08}"));
        std::fs::create_dir_all(&dir)?;
        let student = codeplan_train::infer::inference_model(
            model,
            "student",
            self.tokenizer.clone(),
            self.template.clone(),
        )?;
        let samples_path = dir.join("samples.jsonl");
        codeplan_model::solve::solve_problems(
            &student,
            &self.problems,
            &self.options,
            &samples_path,
            |_| {},
        )?;
        let samples = codeplan_data::read_samples(
            &samples_path,
            &self.problems,
            &codeplan_data::SampleOptions {
                skip_invalid: false,
                extract: codeplan_data::CodeExtraction::Raw,
            },
        )?;
        let options = codeplan_exec::eval::EvalOptions {
            judge: codeplan_exec::eval::JudgeChoice::Auto,
            limits: codeplan_exec::judge::JudgeLimits::default(),
            ks: vec![1],
            rerun_timeouts: false,
            calibrate: None,
        };
        let evaluation = codeplan_exec::eval::evaluate(
            &self.pool,
            &self.problems,
            &samples.samples,
            &options,
            &dir,
            |_| {},
        )?;
        let pass = evaluation
            .summary
            .metrics
            .overall
            .pass_at_k
            .get(&1)
            .copied()
            .unwrap_or(0.0);
        Ok(std::collections::BTreeMap::from([
            ("eval/pass@1".to_owned(), pass),
            ("eval/problems".to_owned(), self.problems.len() as f64),
        ]))
    }
}
