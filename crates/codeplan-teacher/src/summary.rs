//! The run's summary (`summary.json`, `summary.md`) and the dry run's estimate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ask::{unmatched_imports, AskStats, Asker, Question, Stop};
use crate::budget::Price;
use crate::distill::{Run, TeacherInfo};
use crate::records::{CandidateRecord, PlanRecord};
use crate::request::Usage;

/// Validation per difficulty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DifficultyStats {
    /// Problems.
    pub problems: usize,
    /// Problems with at least one kept plan.
    pub problems_with_plans: usize,
    /// Candidate plans.
    pub candidates: usize,
    /// Candidates whose validation code was judged.
    pub judged: usize,
    /// Of those, how many met the acceptance policy.
    pub passed: usize,
    /// `passed / judged`.
    pub pass_rate: Option<f64>,
}

/// Cost of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    /// Price used (USD per million tokens), when known.
    pub price: Option<Price>,
    /// Spent by the requests this run sent, USD.
    pub spent_this_run: Option<f64>,
    /// What all the answers the plans rest on cost (including reused ones), USD.
    pub answers_value: Option<f64>,
}

/// Everything worth knowing about a finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The teacher.
    pub teacher: TeacherInfo,
    /// `backward` or `forward`.
    pub reasoning: String,
    /// sha256 of the templates.
    pub template_hash: String,
    /// Problems given.
    pub problems: usize,
    /// Problems skipped: no reference solution to explain (backward reasoning).
    pub problems_without_solution: usize,
    /// Candidate plans.
    pub candidates: usize,
    /// Plan requests (before deduplication).
    pub plan_requests: usize,
    /// Problems with at least one kept plan.
    pub problems_with_plans: usize,
    /// Plans kept.
    pub plans_kept: usize,
    /// Kept plans whose code met the policy.
    pub plans_validated: usize,
    /// Kept plans per problem that has any: mean, min, max.
    pub plans_per_problem: Option<(f64, usize, usize)>,
    /// Candidates per outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Validation per difficulty (`all` where the data has none).
    pub per_difficulty: BTreeMap<String, DifficultyStats>,
    /// Plan requests: reused, imported, sent, failed, retries.
    pub plan_stage: AskStats,
    /// Validation requests.
    pub code_stage: AskStats,
    /// Tokens of every answer the candidates rest on.
    pub tokens: Usage,
    /// Cost.
    pub cost: Cost,
    /// Why the run stopped early, if it did.
    pub stopped: Option<Stop>,
    /// Problems with candidates not yet asked (nothing kept for them yet).
    pub incomplete_problems: Vec<String>,
    /// Imported batch results that matched no request of this run.
    pub unmatched_imports: usize,
}

impl Summary {
    /// Summarises a run.
    pub fn build(
        run: &Run,
        plans: &[PlanRecord],
        candidates: &[CandidateRecord],
        plan_stage: AskStats,
        code_stage: AskStats,
        asker: &Asker,
    ) -> Summary {
        let labels: Vec<(&str, &str)> = run
            .problems
            .iter()
            .map(|p| (p.id.as_str(), p.difficulty_label()))
            .collect();
        let tally = Tally::of(&labels, plans, candidates);
        let price = run.budget.price();
        let unmatched = run.imported.map_or(0, |b| {
            unmatched_imports(b, &asker.used_imports.lock().expect("imports lock")).len()
        });
        Summary {
            teacher: run.teacher.clone(),
            reasoning: run.config.reasoning.name().to_owned(),
            template_hash: run.templates.hash(run.config.reasoning),
            problems: run.problems.len(),
            problems_without_solution: match run.config.reasoning {
                crate::prompts::Reasoning::Backward => run
                    .problems
                    .iter()
                    .filter(|p| p.solutions.iter().all(|s| s.trim().is_empty()))
                    .count(),
                crate::prompts::Reasoning::Forward => 0,
            },
            candidates: candidates.len(),
            plan_requests: plan_stage.questions,
            problems_with_plans: tally.problems_with_plans,
            plans_kept: plans.len(),
            plans_validated: plans.iter().filter(|p| p.validated).count(),
            plans_per_problem: tally.plans_per_problem,
            outcomes: tally.outcomes,
            per_difficulty: tally.per_difficulty,
            plan_stage,
            code_stage,
            tokens: tally.tokens,
            cost: Cost {
                price,
                spent_this_run: price.map(|_| run.budget.spent()),
                answers_value: price.map(|p| p.cost(tally.tokens)),
            },
            stopped: asker.stopped(),
            incomplete_problems: tally.incomplete,
            unmatched_imports: unmatched,
        }
    }

    /// The summary of shards merged: what follows from the records is recomputed from the
    /// merged `plans` and `candidates` and the whole selection's `(id, difficulty)` labels,
    /// exactly as [`Summary::build`] computes it; request counts, problems without a solution,
    /// money spent and unmatched imports are summed over `parts` (one summary per shard, shard
    /// 0 first, which gives the teacher, templates and price).
    pub fn combine(
        parts: &[Summary],
        labels: &[(&str, &str)],
        plans: &[PlanRecord],
        candidates: &[CandidateRecord],
    ) -> Summary {
        let first = parts.first().expect("at least one shard");
        let tally = Tally::of(labels, plans, candidates);
        let sum = |f: fn(&Summary) -> usize| parts.iter().map(f).sum::<usize>();
        let stages = |f: fn(&Summary) -> AskStats| {
            parts
                .iter()
                .map(f)
                .fold(AskStats::default(), |a, b| AskStats {
                    questions: a.questions + b.questions,
                    reused: a.reused + b.reused,
                    imported: a.imported + b.imported,
                    sent: a.sent + b.sent,
                    failed: a.failed + b.failed,
                    retries: a.retries + b.retries,
                    not_sent: a.not_sent + b.not_sent,
                })
        };
        let price = first.cost.price;
        Summary {
            teacher: first.teacher.clone(),
            reasoning: first.reasoning.clone(),
            template_hash: first.template_hash.clone(),
            problems: labels.len(),
            problems_without_solution: sum(|s| s.problems_without_solution),
            candidates: candidates.len(),
            plan_requests: sum(|s| s.plan_requests),
            problems_with_plans: tally.problems_with_plans,
            plans_kept: plans.len(),
            plans_validated: plans.iter().filter(|p| p.validated).count(),
            plans_per_problem: tally.plans_per_problem,
            outcomes: tally.outcomes,
            per_difficulty: tally.per_difficulty,
            plan_stage: stages(|s| s.plan_stage),
            code_stage: stages(|s| s.code_stage),
            tokens: tally.tokens,
            cost: Cost {
                price,
                spent_this_run: price
                    .map(|_| parts.iter().filter_map(|s| s.cost.spent_this_run).sum()),
                answers_value: price.map(|p| p.cost(tally.tokens)),
            },
            stopped: parts.iter().find_map(|s| s.stopped.clone()),
            incomplete_problems: tally.incomplete,
            unmatched_imports: sum(|s| s.unmatched_imports),
        }
    }

    /// The summary as a Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# codeplan distill\n");
        let _ = writeln!(
            s,
            "Teacher `{}` ({}), {} reasoning, templates `{}`.\n",
            self.teacher.model,
            self.teacher.identity,
            self.reasoning,
            &self.template_hash[..12]
        );
        let _ = writeln!(
            s,
            "- problems: {} ({} with kept plans{})",
            self.problems,
            self.problems_with_plans,
            if self.problems_without_solution > 0 {
                format!(
                    "; {} skipped: no reference solution",
                    self.problems_without_solution
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "- candidate plans: {}; kept: {} ({} validated)",
            self.candidates, self.plans_kept, self.plans_validated
        );
        if let Some((mean, min, max)) = self.plans_per_problem {
            let _ = writeln!(
                s,
                "- kept plans per problem: mean {mean:.2}, min {min}, max {max}"
            );
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "- outcomes: {}", outcomes.join(", "));
        let _ = writeln!(
            s,
            "\n| difficulty | problems | with plans | candidates | judged | passed | pass rate |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, d) in &self.per_difficulty {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                d.problems,
                d.problems_with_plans,
                d.candidates,
                d.judged,
                d.passed,
                d.pass_rate
                    .map_or("–".into(), |r| format!("{:.1}%", 100.0 * r))
            );
        }
        let _ = writeln!(
            s,
            "\n| requests | questions | reused | imported | sent | failed | retries | not sent |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, a) in [("plan", &self.plan_stage), ("code", &self.code_stage)] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                a.questions, a.reused, a.imported, a.sent, a.failed, a.retries, a.not_sent
            );
        }
        let _ = writeln!(
            s,
            "\nTokens of the answers used: {} prompt, {} completion.",
            self.tokens.prompt_tokens, self.tokens.completion_tokens
        );
        match (
            &self.cost.price,
            self.cost.spent_this_run,
            self.cost.answers_value,
        ) {
            (Some(p), Some(spent), Some(value)) => {
                let _ = writeln!(
                    s,
                    "Cost at ${}/${} per million tokens: ${spent:.4} spent by this run; ${value:.4} for all answers used.",
                    p.input, p.output
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "Cost: no price known for this model (give --price-in/--price-out)."
                );
            }
        }
        if let Some(stop) = &self.stopped {
            let why = match stop {
                Stop::Budget => "the budget (--max-cost / --max-requests) was reached".to_owned(),
                Stop::Fatal { message } => message.clone(),
            };
            let _ = writeln!(s, "\n**Stopped early**: {why}.");
        }
        if !self.incomplete_problems.is_empty() {
            let _ = writeln!(
                s,
                "\n{} problem(s) not finished (rerun to continue): {}",
                self.incomplete_problems.len(),
                self.incomplete_problems.join(", ")
            );
        }
        if self.unmatched_imports > 0 {
            let _ = writeln!(
                s,
                "\n{} imported batch result(s) matched no request of this run (other settings?).",
                self.unmatched_imports
            );
        }
        s
    }
}

/// What a summary derives from the records and the problems' difficulty labels (shared by
/// [`Summary::build`] and [`Summary::combine`], so a merged summary cannot drift from a run's).
struct Tally {
    outcomes: BTreeMap<String, usize>,
    per_difficulty: BTreeMap<String, DifficultyStats>,
    tokens: Usage,
    incomplete: Vec<String>,
    problems_with_plans: usize,
    plans_per_problem: Option<(f64, usize, usize)>,
}

impl Tally {
    fn of(labels: &[(&str, &str)], plans: &[PlanRecord], candidates: &[CandidateRecord]) -> Tally {
        let mut outcomes = BTreeMap::new();
        let mut per_difficulty: BTreeMap<String, DifficultyStats> = BTreeMap::new();
        let mut tokens = Usage::default();
        let mut incomplete = std::collections::BTreeSet::new();
        for (_, label) in labels {
            per_difficulty
                .entry((*label).to_owned())
                .or_default()
                .problems += 1;
        }
        for c in candidates {
            *outcomes.entry(c.outcome.name().to_owned()).or_insert(0) += 1;
            tokens.add(c.usage.plan);
            tokens.add(c.usage.code);
            let d = per_difficulty
                .entry(
                    c.difficulty
                        .clone()
                        .unwrap_or_else(|| codeplan_data::UNRATED.into()),
                )
                .or_default();
            d.candidates += 1;
            if c.validation.is_some() {
                d.judged += 1;
                if c.outcome == crate::records::Outcome::Kept {
                    d.passed += 1;
                }
            }
            if c.outcome.name() == "pending" {
                incomplete.insert(c.problem_id.clone());
            }
        }
        let mut per_problem: BTreeMap<&str, usize> = BTreeMap::new();
        for p in plans {
            *per_problem.entry(p.problem_id.as_str()).or_insert(0) += 1;
        }
        for (id, label) in labels {
            if per_problem.contains_key(id) {
                per_difficulty
                    .entry((*label).to_owned())
                    .or_default()
                    .problems_with_plans += 1;
            }
        }
        for d in per_difficulty.values_mut() {
            d.pass_rate = (d.judged > 0).then(|| d.passed as f64 / d.judged as f64);
        }
        let counts: Vec<usize> = per_problem.values().copied().collect();
        let plans_per_problem = (!counts.is_empty()).then(|| {
            (
                counts.iter().sum::<usize>() as f64 / counts.len() as f64,
                *counts.iter().min().expect("non-empty"),
                *counts.iter().max().expect("non-empty"),
            )
        });
        Tally {
            outcomes,
            per_difficulty,
            tokens,
            incomplete: incomplete.into_iter().collect(),
            problems_with_plans: per_problem.len(),
            plans_per_problem,
        }
    }
}

/// What a dry run expects the run to ask.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Plan requests still to send.
    pub plan_requests: usize,
    /// Validation requests still to send (one per plan not yet known, at most).
    pub code_requests: usize,
    /// Answers already on disk (ledger, cache or imported).
    pub reused: usize,
    /// Estimated prompt tokens of the requests to send (4 characters per token).
    pub prompt_tokens: usize,
    /// Most completion tokens they may take (`max_tokens` each).
    pub max_completion_tokens: usize,
    /// Most they may cost, USD, when a price is known.
    pub max_cost: Option<f64>,
}

/// Counts the requests a run would still send: the questions left unanswered (`NotSent`) by
/// its stages, `unknown_code` validation requests for plans not known yet, and `reused`
/// answers found on disk.
pub fn estimate(
    run: &Run,
    plan_pending: &[Question],
    code_pending: &[Question],
    unknown_code: usize,
    reused: usize,
) -> Estimate {
    let mut e = Estimate {
        plan_requests: 0,
        code_requests: 0,
        reused,
        prompt_tokens: 0,
        max_completion_tokens: 0,
        max_cost: None,
    };
    let mut seen = std::collections::HashSet::new();
    for (is_plan, q) in plan_pending
        .iter()
        .map(|q| (true, q))
        .chain(code_pending.iter().map(|q| (false, q)))
    {
        if !seen.insert(q.key.as_str()) {
            continue;
        }
        if is_plan {
            e.plan_requests += 1;
        } else {
            e.code_requests += 1;
        }
        e.prompt_tokens += q.request.estimated_prompt_tokens();
        e.max_completion_tokens += q.request.max_tokens;
    }
    if unknown_code > 0 {
        // A validation prompt is about the problem plus the plan (at most its max_tokens).
        let typical = run
            .problems
            .iter()
            .map(|p| p.question.len() / 4 + 200)
            .sum::<usize>()
            / run.problems.len().max(1);
        e.code_requests += unknown_code;
        e.prompt_tokens += unknown_code * (typical + run.config.plan.max_tokens);
        e.max_completion_tokens += unknown_code * run.config.code.max_tokens;
    }
    e.max_cost = run.budget.price().map(|p| {
        p.cost(Usage {
            prompt_tokens: e.prompt_tokens,
            completion_tokens: e.max_completion_tokens,
        })
    });
    e
}
