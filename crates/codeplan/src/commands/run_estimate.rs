//! `codeplan run --dry-run`: how much work the stages still to run are, at most.

use anyhow::{Context, Result};
use toml::Value;

use codeplan_run::record::StageStatus;
use codeplan_run::{Plan, Stage, StageKind};
use codeplan_train::config::TrainConfig;

use super::{distill, generate};

/// Throughputs measured on the 2-core Zen 4 machine, by the model a stage runs (BENCHMARKS.md,
/// "codeplan run"): the local teacher's completion tokens per second of its whole stage
/// (prefill, validation and judging included), LoRA training tokens/s, and tokens/s sampled
/// from the stage's q8_0 export (n = 5 for smollm2-135m, n = 10 for qwen2.5-coder-0.5b).
/// `None`: not measured, so no time is claimed.
const SPEEDS: &[Speeds] = &[
    Speeds {
        model: "smollm2-135m",
        teacher: None,
        train: Some(200.0),
        sample: Some(210.0),
    },
    Speeds {
        model: "qwen2.5-coder-0.5b",
        teacher: Some(57.0),
        // The cpu-replication run's 1,024-token rows, whole stage (204,800 / 3,377 s); the
        // training benchmark's 512-token rate (103.9) put that stage at ≤ 33 min.
        train: Some(60.6),
        // The cpu-replication baseline's generated tokens over its stage (199,352 / 3,586 s).
        sample: Some(55.6),
    },
    Speeds {
        model: "qwen2.5-coder-1.5b",
        teacher: Some(18.9),
        train: None,
        sample: None,
    },
];

/// One model's measured throughputs, tokens/s.
struct Speeds {
    model: &'static str,
    teacher: Option<f64>,
    train: Option<f64>,
    sample: Option<f64>,
}

/// One stage's work, at most.
struct Work {
    what: String,
    seconds: Option<f64>,
}

/// Prints what each unfinished stage will do and a rough time.
pub fn print(plan: &Plan, statuses: &[StageStatus]) -> Result<()> {
    if statuses.iter().all(|s| *s == StageStatus::Cached) {
        println!("Nothing to do: every stage is cached.");
        return Ok(());
    }
    let mut total = 0.0;
    let mut unknown = false;
    println!("Work still to do (upper bounds):");
    for (stage, status) in plan.stages.iter().zip(statuses) {
        if *status == StageStatus::Cached {
            continue;
        }
        let work = estimate(plan, stage)
            .with_context(|| format!("estimating the {} stage", stage.kind.name()))?;
        match work.seconds {
            Some(s) => total += s,
            None => unknown = true,
        }
        println!(
            "  {:<9} {:<24} {}{}",
            stage.kind.name(),
            stage.variants.join(", "),
            work.what,
            work.seconds
                .map(|s| format!(", ≤ ~{}", minutes(s)))
                .unwrap_or_default()
        );
    }
    if total == 0.0 {
        println!("\nRough time: unknown (no speeds are measured for these models and stages).");
    } else {
        println!(
            "\nRough time: ≤ ~{}{} at the speeds measured on a 2-core machine; finished teacher \
             answers in the shared cache are not asked again, so distillation can take far less.",
            minutes(total),
            if unknown {
                " plus stages of unknown speed"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn estimate(plan: &Plan, stage: &Stage) -> Result<Work> {
    let table = Value::Table(stage.config.clone());
    let problems = || -> Result<usize> { Ok(super::run_report::problems_of(&stage.config)?.len()) };
    Ok(match stage.kind {
        StageKind::Distill => {
            let args: distill::DistillArgs = table.try_into()?;
            let c = args.settings()?;
            let n = problems()?;
            let asks = n * c.plans_per_problem;
            let requests = asks * if c.validate { 2 } else { 1 };
            let tokens =
                asks * (c.plan.max_tokens + if c.validate { c.code.max_tokens } else { 0 });
            let speed = args
                .teacher
                .as_deref()
                .and_then(|t| t.strip_prefix("local:"))
                .and_then(|m| speed(m, |s| s.teacher));
            Work {
                what: format!(
                    "{n} problems × {} plans: ≤ {requests} teacher requests, ≤ {tokens} generated tokens",
                    c.plans_per_problem
                ),
                seconds: speed.map(|s| tokens as f64 / s),
            }
        }
        StageKind::Train => {
            let c: TrainConfig = table.try_into()?;
            let tokens = c.max_steps as usize * c.batch_size * c.grad_accum * c.max_len;
            let model = student_name(plan, stage);
            Work {
                what: format!("{} updates: ≤ {tokens} tokens", c.max_steps),
                seconds: model
                    .and_then(|m| speed(&m, |s| s.train))
                    .map(|s| tokens as f64 / s),
            }
        }
        StageKind::Generate => {
            let args: generate::GenerateArgs = table.try_into()?;
            let n = problems()?;
            let per = args.n.unwrap_or(1);
            // A resumed stage only samples what its samples file lacks.
            let saved = args.out.as_deref().map_or(0, saved_samples).min(n * per);
            let tokens = (n * per - saved) * args.max_new_tokens.unwrap_or(512);
            let model = student_name(plan, stage);
            let resumed = if saved > 0 {
                format!(" ({saved} already saved)")
            } else {
                String::new()
            };
            Work {
                what: format!("{n} problems × {per} samples{resumed}: ≤ {tokens} generated tokens"),
                seconds: model
                    .and_then(|m| speed(&m, |s| s.sample))
                    .map(|s| tokens as f64 / s),
            }
        }
        StageKind::Eval => {
            let n = problems()?;
            let gen = &plan.stages[stage.needs[0]];
            let per = gen.config.get("n").and_then(Value::as_integer).unwrap_or(1);
            Work {
                what: format!("{} programs judged in the sandbox", n as i64 * per),
                seconds: None,
            }
        }
    })
}

/// The named student model a stage's variant trains, if it is one of the named models.
fn student_name(plan: &Plan, stage: &Stage) -> Option<String> {
    let v = plan
        .variants
        .iter()
        .find(|v| stage.variants.contains(&v.variant.name))?;
    v.variant
        .student
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// How many whole samples a (possibly torn) samples file already holds. Not the sampler's own
/// resume reader: that one cuts a torn last line, and a dry run writes nothing.
fn saved_samples(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| {
        text.lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count()
    })
}

fn speed(model: &str, pick: fn(&Speeds) -> Option<f64>) -> Option<f64> {
    SPEEDS.iter().find(|s| s.model == model).and_then(pick)
}

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{:.0} s", seconds.max(1.0))
    } else {
        format!("{:.0} min", seconds / 60.0)
    }
}
