//! The distillation run: candidate plans for every problem (backward or forward reasoning,
//! one per distinct reference solution and/or several samples), the leak guard, validation
//! code written from each plan and judged on the problem's tests, and the acceptance policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use codeplan_data::{extract_fenced, Problem, Sample};
use codeplan_exec::eval::JudgeChoice;
use codeplan_exec::judge::{JudgeLimits, SampleVerdict};
use codeplan_exec::pool::{Job, JudgeSettings, Pool};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ask::{dedup, AskStats, Asked, Asker, Question, Source, Stop};
use crate::batch::BatchResults;
use crate::budget::Budget;
use crate::leak::LeakGuard;
use crate::prompts::{Reasoning, Templates};
use crate::records::{CandidateRecord, Outcome, PlanRecord, PlanUsage, Validation};
use crate::request::{ChatRequest, Sampling};
use crate::store::Store;
use crate::summary::{estimate, Estimate, Summary};
use crate::TeacherError;
use select::{decide, judge_all, records, snake};

/// Which candidates a problem gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanSampling {
    /// One plan per distinct reference solution (shortest first), up to K.
    Solutions,
    /// K samples of one prompt (the shortest solution).
    Samples,
    /// Distinct solutions first, then further samples of them in turn, up to K.
    Mixed,
}

/// What to do with a problem none of whose plans passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonePass {
    /// Keep no plan for it.
    Drop,
    /// Keep the plan whose code passed the largest fraction of tests.
    Best,
    /// Keep all its plans, marked unvalidated.
    Unvalidated,
}

/// Settings of a run (everything that changes what is asked or kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Backward (explain a solution) or forward (from the statement).
    pub reasoning: Reasoning,
    /// Candidate plans per problem (K).
    pub plans_per_problem: usize,
    /// How the K candidates are chosen.
    pub sampling: PlanSampling,
    /// Sampling of plan requests.
    pub plan: Sampling,
    /// Sampling of validation-code requests.
    pub code: Sampling,
    /// Base seed; each request derives its own.
    pub seed: u64,
    /// Validate plans by running the code they lead to.
    pub validate: bool,
    /// A plan passes when its code passes at least this fraction of the tests (1 = all).
    pub min_pass_fraction: f64,
    /// Policy for problems where no plan passes.
    pub none_pass: NonePass,
    /// Leak guard thresholds.
    pub leak: LeakGuard,
    /// Judge choice for validation.
    pub judge: JudgeChoice,
    /// Judge limits for validation.
    pub limits: JudgeLimits,
}

/// The teacher, as recorded in outputs and content addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherInfo {
    /// The model name sent in requests.
    pub model: String,
    /// What answers: `openai-compatible:<model>` or `local:<name>:<sha256 prefix>`.
    pub identity: String,
}

/// Everything a run needs.
pub struct Run<'a> {
    /// The problems.
    pub problems: &'a [Problem],
    /// Settings.
    pub config: &'a DistillConfig,
    /// Prompt templates.
    pub templates: &'a Templates,
    /// The teacher's identity.
    pub teacher: &'a TeacherInfo,
    /// Ledger and cache.
    pub store: &'a Store,
    /// Caps.
    pub budget: &'a Budget,
    /// Where new answers come from.
    pub source: Source<'a>,
    /// Imported batch results.
    pub imported: Option<&'a BatchResults>,
    /// Sandboxed workers for validation (not needed for dry runs and exports).
    pub pool: Option<&'a Pool>,
}

/// The stage a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Plan requests.
    Plans,
    /// Validation-code requests.
    Code,
    /// Judging validation code.
    Judge,
}

/// Progress of a stage.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The stage.
    pub stage: Stage,
    /// Items settled.
    pub done: usize,
    /// Items in the stage.
    pub total: usize,
    /// Requests sent so far in the stage.
    pub sent: usize,
    /// Items without an answer so far.
    pub failed: usize,
}

/// What a run produced.
#[derive(Debug)]
pub struct Report {
    /// Counts, rates, tokens and cost.
    pub summary: Summary,
    /// The kept plans (`plans.jsonl`).
    pub plans: Vec<PlanRecord>,
    /// Every candidate (`candidates.jsonl`).
    pub candidates: Vec<CandidateRecord>,
    /// For dry runs: what the run would ask.
    pub estimate: Option<Estimate>,
    /// For exports: the file written and its request count.
    pub exported: Option<(PathBuf, usize)>,
}

/// One candidate plan of a problem.
struct Candidate {
    problem: usize,
    index: usize,
    solution_idx: Option<usize>,
    sample_idx: usize,
}

/// The candidates of every problem; problems without a reference solution get none under
/// backward reasoning (reported).
fn candidates(problems: &[Problem], config: &DistillConfig) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (p, problem) in problems.iter().enumerate() {
        let k = config.plans_per_problem;
        if config.reasoning == Reasoning::Forward {
            out.extend((0..k).map(|s| Candidate {
                problem: p,
                index: s,
                solution_idx: None,
                sample_idx: s,
            }));
            continue;
        }
        // Distinct solutions, shortest first: shorter prompts cost less.
        let mut seen = std::collections::HashSet::new();
        let mut distinct: Vec<usize> = (0..problem.solutions.len())
            .filter(|&i| seen.insert(problem.solutions[i].trim().replace('\t', "    ")))
            .filter(|&i| !problem.solutions[i].trim().is_empty())
            .collect();
        distinct.sort_by_key(|&i| (problem.solutions[i].len(), i));
        if distinct.is_empty() {
            continue;
        }
        let picks: Vec<(usize, usize)> = match config.sampling {
            PlanSampling::Solutions => distinct.iter().take(k).map(|&s| (s, 0)).collect(),
            PlanSampling::Samples => (0..k).map(|j| (distinct[0], j)).collect(),
            PlanSampling::Mixed => (0..k)
                .map(|j| (distinct[j % distinct.len()], j / distinct.len()))
                .collect(),
        };
        out.extend(
            picks
                .into_iter()
                .enumerate()
                .map(|(index, (s, sample))| Candidate {
                    problem: p,
                    index,
                    solution_idx: Some(s),
                    sample_idx: sample,
                }),
        );
    }
    out
}

/// A request's seed from the run's seed and what the request is for (below 2³¹, which every
/// server accepts).
fn request_seed(base: u64, problem: &str, c: &Candidate, stage: &str) -> u64 {
    let text = format!(
        "{base}|{problem}|{:?}|{}|{stage}",
        c.solution_idx, c.sample_idx
    );
    let d = Sha256::digest(text.as_bytes());
    u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff)
}

/// Per candidate, what is known so far.
#[derive(Default, Clone)]
struct State {
    plan_key: String,
    plan: Option<String>,
    code_key: Option<String>,
    code: Option<String>,
    validation: Option<Validation>,
    usage: PlanUsage,
    outcome: Option<Outcome>,
}

/// Runs the whole distillation. Answers are recorded as they arrive; outputs are returned for
/// the caller to write (see [`crate::write_outputs`]).
pub fn distill(run: &Run, progress: &(dyn Fn(Progress) + Sync)) -> Result<Report, TeacherError> {
    let config = run.config;
    if config.plans_per_problem == 0 {
        return Err(TeacherError::Config(
            "--plans-per-problem must be at least 1".into(),
        ));
    }
    if !(config.min_pass_fraction > 0.0 && config.min_pass_fraction <= 1.0) {
        return Err(TeacherError::Config(format!(
            "--min-pass-fraction must be in (0, 1], got {}",
            config.min_pass_fraction
        )));
    }
    let cands = candidates(run.problems, config);
    let asker = Asker::new(run.store, run.budget, &run.source, run.imported);
    let mut states = vec![State::default(); cands.len()];

    // Stage 1: plans.
    let plan_questions: Vec<Question> = cands
        .iter()
        .map(|c| {
            let problem = &run.problems[c.problem];
            let solution = c.solution_idx.map(|s| problem.solutions[s].as_str());
            let messages = run
                .templates
                .plan_messages(config.reasoning, problem, solution)?;
            let stop = run.templates.plan_stop(config.reasoning);
            Ok(question(run, c, "plan", messages, config.plan, stop))
        })
        .collect::<Result<_, TeacherError>>()?;
    if let Some(report) = export_pending(run, &cands, &plan_questions, &plan_questions)? {
        return Ok(report);
    }
    let (plan_answers, plan_stats) = ask_stage(&asker, &plan_questions, Stage::Plans, progress)?;
    let plan_pending = not_sent(&plan_questions, &plan_answers);
    for ((c, s), (q, asked)) in cands
        .iter()
        .zip(states.iter_mut())
        .zip(plan_questions.iter().zip(plan_answers))
    {
        s.plan_key = q.key.clone();
        let problem = &run.problems[c.problem];
        match asked {
            Asked::Answer(reply) => {
                s.usage.plan = reply.usage;
                match reply.text() {
                    Err(bad) => s.outcome = Some(Outcome::BadPlanAnswer { kind: snake(&bad) }),
                    Ok(text) => {
                        let plan = text.trim().to_owned();
                        let solution = c.solution_idx.map(|i| problem.solutions[i].as_str());
                        if let Err(leak) = config.leak.check(&plan, solution) {
                            s.outcome = Some(Outcome::Leak { leak });
                        }
                        s.plan = Some(plan);
                    }
                }
            }
            Asked::Failed(error) => {
                s.outcome = Some(Outcome::RequestFailed {
                    stage: "plan".into(),
                    error,
                })
            }
            Asked::NotSent => {
                s.outcome = Some(Outcome::Pending {
                    stage: "plan".into(),
                })
            }
        }
    }

    // Stage 2: validation code, for plans that passed the guard.
    let mut code_stats = AskStats::default();
    // Validation questions not asked, and plans still unknown (a dry run's estimate needs both).
    let mut asked_code: (Vec<Question>, usize) = (Vec::new(), 0);
    if config.validate {
        let todo: Vec<usize> = (0..cands.len())
            .filter(|&i| states[i].outcome.is_none())
            .collect();
        let code_questions: Vec<Question> = todo
            .iter()
            .map(|&i| {
                let c = &cands[i];
                let problem = &run.problems[c.problem];
                let plan = states[i].plan.as_deref().expect("answered plans have text");
                let messages = run.templates.code_messages(problem, plan)?;
                let stop = run.templates.code_stop();
                Ok(question(run, c, "code", messages, config.code, stop))
            })
            .collect::<Result<_, TeacherError>>()?;
        if let Some(report) = export_pending(run, &cands, &plan_questions, &code_questions)? {
            return Ok(report);
        }
        // Plans still unknown in a dry run will each need one validation request too.
        let estimate_extra = states
            .iter()
            .filter(|s| matches!(&s.outcome, Some(Outcome::Pending { .. })))
            .count();
        let (answers, stats) = ask_stage(&asker, &code_questions, Stage::Code, progress)?;
        let code_pending = not_sent(&code_questions, &answers);
        code_stats = stats;
        for ((&i, q), asked) in todo.iter().zip(&code_questions).zip(answers) {
            let s = &mut states[i];
            s.code_key = Some(q.key.clone());
            match asked {
                Asked::Answer(reply) => {
                    s.usage.code = reply.usage;
                    match reply.text() {
                        Ok(text) => s.code = Some(extract_fenced(text).into_owned()),
                        Err(bad) => s.outcome = Some(Outcome::BadCodeAnswer { kind: snake(&bad) }),
                    }
                }
                Asked::Failed(error) => {
                    s.outcome = Some(Outcome::RequestFailed {
                        stage: "code".into(),
                        error,
                    })
                }
                Asked::NotSent => {
                    s.outcome = Some(Outcome::Pending {
                        stage: "code".into(),
                    })
                }
            }
        }
        if !matches!(run.source, Source::DryRun) {
            judge_all(run, &cands, &mut states, progress)?;
        }
        asked_code = (code_pending, estimate_extra);
    }
    if matches!(run.source, Source::DryRun) {
        let (code_pending, unknown_code) = &asked_code;
        let reused =
            plan_stats.reused + plan_stats.imported + code_stats.reused + code_stats.imported;
        let est = estimate(run, &plan_pending, code_pending, *unknown_code, reused);
        let summary = Summary::build(run, &[], &[], plan_stats, code_stats, &asker);
        return Ok(Report {
            summary,
            plans: Vec::new(),
            candidates: Vec::new(),
            estimate: Some(est),
            exported: None,
        });
    }
    decide(config, &cands, &mut states);
    let (plans, records) = records(run, &cands, states);
    let summary = Summary::build(run, &plans, &records, plan_stats, code_stats, &asker);
    Ok(Report {
        summary,
        plans,
        candidates: records,
        estimate: None,
        exported: None,
    })
}

/// The question of one stage (`plan` or `code`) for candidate `c`.
fn question(
    run: &Run,
    c: &Candidate,
    stage: &str,
    messages: Vec<crate::request::Message>,
    sampling: Sampling,
    stop: &[String],
) -> Question {
    let problem = &run.problems[c.problem];
    let request = ChatRequest::new(
        &run.teacher.model,
        messages,
        sampling,
        request_seed(run.config.seed, &problem.id, c, stage),
    )
    .with_stop(stop);
    Question {
        key: request.key(&run.teacher.identity),
        label: format!("{stage} {} c{}", problem.id, c.index),
        request,
    }
}

/// In export mode, writes the stage's questions that have no answer yet and ends the run
/// (`None`: not exporting, or nothing pending in this stage).
fn export_pending(
    run: &Run,
    cands: &[Candidate],
    plan_questions: &[Question],
    questions: &[Question],
) -> Result<Option<Report>, TeacherError> {
    let Source::Export(path) = &run.source else {
        return Ok(None);
    };
    let (unique, _) = dedup(questions);
    let pending = pending_questions(run.store, run.imported, &unique)?;
    if pending.is_empty() {
        return Ok(None);
    }
    crate::batch::export(path, &pending)?;
    Ok(Some(exported_report(
        run,
        cands,
        plan_questions,
        path,
        pending.len(),
    )))
}

/// Asks a stage's questions (each distinct question once) and maps answers back.
fn ask_stage(
    asker: &Asker,
    questions: &[Question],
    stage: Stage,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(Vec<Asked>, AskStats), TeacherError> {
    let (unique, map) = dedup(questions);
    let total = unique.len();
    let (answers, stats) = asker.ask_all(&unique, &|done, s: AskStats| {
        progress(Progress {
            stage,
            done,
            total,
            sent: s.sent,
            failed: s.failed,
        })
    })?;
    Ok((map.iter().map(|&i| answers[i].clone()).collect(), stats))
}

/// The questions a stage did not ask (dry run, export, or a stop).
fn not_sent(questions: &[Question], answers: &[Asked]) -> Vec<Question> {
    questions
        .iter()
        .zip(answers)
        .filter(|(_, a)| matches!(a, Asked::NotSent))
        .map(|(q, _)| q.clone())
        .collect()
}

/// Questions with no answer in the ledger, the cache or the imported results.
fn pending_questions(
    store: &Store,
    imported: Option<&BatchResults>,
    questions: &[Question],
) -> Result<Vec<Question>, TeacherError> {
    let mut out = Vec::new();
    for q in questions {
        let known = store.lookup(&q.key, &q.label)?.is_some()
            || imported.is_some_and(|b| b.contains_key(&q.key));
        if !known {
            out.push(q.clone());
        }
    }
    Ok(out)
}

fn exported_report(
    run: &Run,
    cands: &[Candidate],
    plan_questions: &[Question],
    path: &std::path::Path,
    count: usize,
) -> Report {
    let asker = Asker::new(run.store, run.budget, &run.source, run.imported);
    let mut summary = Summary::build(
        run,
        &[],
        &[],
        AskStats::default(),
        AskStats::default(),
        &asker,
    );
    summary.candidates = cands.len();
    summary.plan_requests = plan_questions.len();
    Report {
        summary,
        plans: Vec::new(),
        candidates: Vec::new(),
        estimate: None,
        exported: Some((path.to_path_buf(), count)),
    }
}

/// Whether a stop reason ends the run with an error.
pub fn stop_message(stop: &Stop, budget: &Budget) -> String {
    match stop {
        Stop::Budget => format!(
            "stopped at the budget after {} new request(s) (${:.4} spent); answers so far are kept: \
             rerun with a higher --max-cost/--max-requests to continue",
            budget.sent(),
            budget.spent()
        ),
        Stop::Fatal { message } => message.clone(),
    }
}

mod select;
#[cfg(test)]
mod tests;
