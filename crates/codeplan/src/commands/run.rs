//! `codeplan run`: the whole experiment — distill → train → generate → eval for every variant,
//! then the report — each stage cached by a hash of its inputs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use toml::{Table, Value};

use codeplan_run::record::{self, StageRecord, StageStatus};
use codeplan_run::{Experiment, FileHashes, Plan, Stage, StageKind};
use codeplan_train::config::TrainConfig;

use super::{distill, eval, generate, train};
use crate::options::DataArgs;

/// Arguments of `codeplan run`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  codeplan run examples/quickstart.toml                   # the README's main job (≤ 30 min on 2 cores)
  codeplan run examples/quickstart.toml --dry-run         # the stages, what is cached, an estimate
  codeplan run exp.toml --set student.max_steps=50 --set generate.n=20
  codeplan run exp.toml --set variant.codeplan.teacher.plans_per_problem=2 --out out/k2
  codeplan report compare out/quickstart out/k2           # two finished runs, problem by problem

The experiment file names the data ([train_data], [eval_data]), the teacher ([teacher]: any
`codeplan distill` setting), the student ([student]: any `codeplan train` setting), decoding
([generate], identical for every variant), judging ([eval]) and the [[variant]]s to compare
(default: the code-only baseline and CodePLAN; ablations: code-only, forward-plans, one-plan,
no-validation, plan-head). See examples/*.toml.

Every stage's output lives in <out>/stages/<kind>-<key>/, keyed by a hash of its inputs (data,
model files, settings, codeplan's version): a rerun skips finished stages, a killed run resumes
the stage it was in, and changing the student's settings does not ask the teacher again.
Evaluation EXECUTES model-written code, only inside the sandbox (see `codeplan --help`).")]
pub struct RunArgs {
    /// The experiment file (TOML).
    #[arg(value_name = "EXPERIMENT.toml")]
    pub experiment: PathBuf,
    /// Override a setting of the file, e.g. `student.max_steps=20` or
    /// `variant.codeplan.teacher.reasoning=forward` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The run folder [default: the file's `out`, else out/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the stages, which are cached, and an estimate of the work; run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `codeplan run`.
pub fn run(args: RunArgs) -> Result<()> {
    let mut overrides = args.set.clone();
    if let Some(out) = &args.out {
        overrides.push(format!("out = {}", toml_string(&out.display().to_string())));
    }
    let experiment = Experiment::load(&args.experiment, &overrides)?;
    check_sections(&experiment, &args.experiment)?;
    let out = experiment.out_dir();
    // A dry run writes nothing: no folder, no lock, no hash memo.
    let lock = if args.dry_run {
        None
    } else {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        Some(lock_run(&out)?)
    };
    let mut hashes = FileHashes::with_memo(&out.join(".file-hashes.json"));
    let plan = codeplan_run::plan(&experiment, &mut hashes)?;
    if !args.dry_run {
        hashes.save()?;
    }
    check_stage_configs(&plan)?;
    let statuses = plan
        .stages
        .iter()
        .map(record::status)
        .collect::<Result<Vec<_>, _>>()?;
    print_plan(&experiment, &plan, &statuses);
    if args.dry_run {
        return super::run_estimate::print(&plan, &statuses);
    }
    if !plan.named_models.is_empty() {
        super::models::FetchArgs::ensure(plan.named_models.clone())
            .context("fetching the experiment's models")?;
    }
    let resolved = toml::to_string(&experiment).context("writing the resolved experiment")?;
    record::write_atomic(&out.join("experiment.toml"), resolved.as_bytes())?;
    let started = Instant::now();
    let mut ran = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate() {
        let label = format!(
            "[{}/{}] {} ({})",
            i + 1,
            plan.stages.len(),
            stage.kind.name(),
            stage.variants.join(", ")
        );
        if statuses[i] == StageStatus::Cached {
            eprintln!("{label}: cached, {}", stage.dir.display());
            ran.push(false);
            check_outputs(stage)?;
            continue;
        }
        eprintln!(
            "{label}: {} → {}",
            if statuses[i] == StageStatus::Partial {
                "resuming"
            } else {
                "running"
            },
            stage.dir.display()
        );
        let seconds = run_stage(stage)
            .with_context(|| {
                format!(
                    "stage {} of {}",
                    stage.kind.name(),
                    stage.variants.join(", ")
                )
            })
            .with_context(|| {
                format!(
                    "the run stopped; run the same command again to resume ({}; finished stages are kept)",
                    std::env::args().collect::<Vec<_>>().join(" ")
                )
            })?;
        eprintln!("{label}: done in {:.0} s", seconds);
        ran.push(true);
        check_outputs(stage)?;
    }
    let manifest = super::run_report::manifest(&experiment, &plan, &ran, started.elapsed())?;
    record::write_atomic(
        &out.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    super::run_report::report(&experiment, &plan, manifest)?;
    drop(lock);
    Ok(())
}

/// Runs one stage with its verb's own code, then marks it finished.
fn run_stage(stage: &Stage) -> Result<f64> {
    std::fs::create_dir_all(&stage.dir)
        .with_context(|| format!("creating {}", stage.dir.display()))?;
    let config_path = stage.config_path();
    let text = toml::to_string(&stage.config).context("writing a stage's settings")?;
    record::write_atomic(&config_path, text.as_bytes())?;
    let started_at = SystemTime::now();
    let started = Instant::now();
    let config = Some(config_path.clone());
    match stage.kind {
        StageKind::Distill => distill::run(distill::DistillArgs {
            config,
            ..Default::default()
        })?,
        StageKind::Train => {
            let resume =
                !codeplan_train::checkpoint::list(&stage.dir.join("checkpoints"))?.is_empty();
            train::run(train::TrainArgs {
                config,
                resume,
                ..Default::default()
            })?
        }
        StageKind::Generate => generate::run(generate::GenerateArgs {
            config,
            ..Default::default()
        })?,
        StageKind::Eval => eval::run(eval::EvalArgs {
            config,
            ..Default::default()
        })?,
    }
    let seconds = started.elapsed().as_secs_f64();
    record::write_record(
        stage,
        &StageRecord {
            kind: stage.kind.name().into(),
            key: stage.key.clone(),
            inputs: stage.inputs.clone(),
            variants: stage.variants.clone(),
            command: stage.command(),
            codeplan_version: codeplan_run::plan::VERSION.into(),
            started: humantime::format_rfc3339_seconds(started_at).to_string(),
            finished: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            wall_seconds: seconds,
        },
    )?;
    Ok(seconds)
}

/// Stops with a clear message where a finished stage left its readers nothing to work on.
fn check_outputs(stage: &Stage) -> Result<()> {
    if stage.kind != StageKind::Distill {
        return Ok(());
    }
    let plans = codeplan_run::plan::outputs::plans(&stage.dir);
    let text =
        std::fs::read_to_string(&plans).with_context(|| format!("reading {}", plans.display()))?;
    if text.lines().all(|l| l.trim().is_empty()) {
        bail!(
            "the teacher kept no plans for {} (see {}): the plan task has nothing to train on. \
             Give the teacher more room (teacher.max_tokens), a stronger model, or \
             teacher.when_none_pass = \"best\" / \"unvalidated\"; its answers are cached, so \
             only what changes is asked again",
            stage.variants.join(", "),
            stage.dir.join("summary.md").display()
        );
    }
    Ok(())
}

/// Checks every section against the verb that reads it, so a misspelt key is named before
/// anything runs (and not half an hour in).
fn check_sections(experiment: &Experiment, path: &Path) -> Result<()> {
    let file = path.display();
    let check = |what: &str, table: &Table, verb: &str| -> Result<()> {
        let value = Value::Table(table.clone());
        let result = match verb {
            "distill" => value.try_into::<distill::DistillArgs>().map(drop),
            "train" => value.try_into::<TrainConfig>().map(drop),
            "generate" => value.try_into::<generate::GenerateArgs>().map(drop),
            "eval" => value.try_into::<eval::EvalArgs>().map(drop),
            _ => value.try_into::<DataArgs>().map(drop),
        };
        result.map_err(|e| {
            anyhow::anyhow!(
                "{file}: {what}: {} (it takes `codeplan {verb}` settings: see `codeplan {verb} --help`)",
                e.to_string().trim()
            )
        })
    };
    check("[train_data]", &experiment.train_data, "data")?;
    check("[eval_data]", &experiment.eval_data, "data")?;
    for v in experiment.variants() {
        let which = |section: &str| {
            if experiment.variants.is_empty() {
                format!("[{section}]")
            } else {
                format!("[{section}] (as variant `{}` uses it)", v.name)
            }
        };
        if v.uses_plans() {
            check(&which("teacher"), &v.teacher, "distill")?;
        }
        check(&which("student"), &v.student, "train")?;
    }
    check("[generate]", &experiment.generate, "generate")?;
    check("[eval]", &experiment.eval, "eval")?;
    Ok(())
}

/// Checks each stage's full settings (problems and paths filled in) the way its verb will.
fn check_stage_configs(plan: &Plan) -> Result<()> {
    for stage in &plan.stages {
        if stage.kind == StageKind::Distill {
            let args: distill::DistillArgs = Value::Table(stage.config.clone())
                .try_into()
                .context("a teacher stage's settings")?;
            args.settings().with_context(|| {
                format!("the teacher's settings for {}", stage.variants.join(", "))
            })?;
        }
        if stage.kind == StageKind::Train {
            let config: TrainConfig = Value::Table(stage.config.clone())
                .try_into()
                .context("a training stage's settings")?;
            config.validate().with_context(|| {
                format!("the student's settings for {}", stage.variants.join(", "))
            })?;
        }
    }
    Ok(())
}

/// Holds an exclusive lock on the run folder: two runs writing one folder would corrupt it.
fn lock_run(out: &Path) -> Result<File> {
    let path = out.join(".lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `codeplan run` is using {} (wait for it, or choose another --out)",
            out.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

fn print_plan(experiment: &Experiment, plan: &Plan, statuses: &[StageStatus]) {
    println!(
        "Experiment `{}`: {} variant(s), {} stage(s) in {}",
        experiment.name,
        plan.variants.len(),
        plan.stages.len(),
        plan.out.display()
    );
    for v in &plan.variants {
        println!(
            "  {:<16} {}{}",
            v.variant.name,
            v.variant.description,
            if v.variant.baseline {
                " (baseline)"
            } else {
                ""
            }
        );
    }
    println!("\n  {:<9} {:<13} {:<9} variants", "stage", "key", "status");
    for (stage, status) in plan.stages.iter().zip(statuses) {
        println!(
            "  {:<9} {:<13} {:<9} {}",
            stage.kind.name(),
            &stage.key[..12],
            match status {
                StageStatus::Cached => "cached",
                StageStatus::Partial => "resume",
                StageStatus::Pending => "to run",
            },
            stage.variants.join(", ")
        );
    }
    println!();
}

/// A string as a TOML literal.
fn toml_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}
