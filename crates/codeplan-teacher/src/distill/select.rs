//! Judging the teacher's validation programs and choosing the plans to keep.

use super::*;

/// Judges every validation program on its problem's tests.
pub(super) fn judge_all(
    run: &Run,
    cands: &[Candidate],
    states: &mut [State],
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(), TeacherError> {
    let todo: Vec<usize> = (0..cands.len())
        .filter(|&i| states[i].outcome.is_none() && states[i].code.is_some())
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let pool = run.pool.ok_or_else(|| {
        TeacherError::Config("validation needs the sandboxed Python workers".into())
    })?;
    let problems: Vec<Arc<Problem>> = run.problems.iter().cloned().map(Arc::new).collect();
    let mut jobs = Vec::with_capacity(todo.len());
    for &i in &todo {
        let c = &cands[i];
        let problem = &problems[c.problem];
        let kind = run.config.judge.resolve(problem)?;
        jobs.push(Job {
            problem: problem.clone(),
            sample: Sample {
                problem_id: problem.id.clone(),
                // The judge reports verdicts by sample index: use the candidate's position.
                sample_idx: i,
                code: states[i].code.clone().expect("filtered on code"),
            },
            kind,
            limits: run.config.limits.clone(),
        });
    }
    let total = jobs.len();
    let mut done = 0;
    let mut verdicts: Vec<SampleVerdict> = Vec::with_capacity(total);
    pool.judge_all(jobs, &JudgeSettings::default(), |v| {
        done += 1;
        progress(Progress {
            stage: Stage::Judge,
            done,
            total,
            sent: 0,
            failed: 0,
        });
        verdicts.push(v);
    });
    for v in verdicts {
        let i = v.sample_idx;
        let problem = &run.problems[cands[i].problem];
        let total_tests = problem.test_count().max(1);
        let passed_tests = v
            .tests
            .iter()
            .filter(|t| t.status == codeplan_exec::judge::TestStatus::Pass)
            .count()
            .min(total_tests);
        states[i].validation = Some(Validation {
            code: states[i].code.clone().unwrap_or_default(),
            passed: v.passed,
            pass_fraction: if v.passed {
                1.0
            } else {
                passed_tests as f64 / total_tests as f64
            },
            tests_passed: if v.passed { total_tests } else { passed_tests },
            tests_total: total_tests,
            status: snake(&v.status),
            test_statuses: v.tests.iter().map(|t| snake(&t.status)).collect(),
        });
    }
    Ok(())
}

pub(super) fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Applies the acceptance policy, problem by problem.
pub(super) fn decide(config: &DistillConfig, cands: &[Candidate], states: &mut [State]) {
    let mut by_problem: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        by_problem.entry(c.problem).or_default().push(i);
    }
    for members in by_problem.values() {
        let accepts = |v: &Validation| {
            if config.min_pass_fraction >= 1.0 {
                v.passed
            } else {
                v.pass_fraction >= config.min_pass_fraction
            }
        };
        for &i in members {
            if states[i].outcome.is_some() {
                continue;
            }
            states[i].outcome = Some(match (&states[i].validation, config.validate) {
                (_, false) => Outcome::Kept,
                (Some(v), true) if accepts(v) => Outcome::Kept,
                _ => Outcome::FailedValidation,
            });
        }
        let complete = members
            .iter()
            .all(|&i| !matches!(states[i].outcome, Some(Outcome::Pending { .. })));
        let any_kept = members
            .iter()
            .any(|&i| states[i].outcome == Some(Outcome::Kept));
        if !config.validate || any_kept || !complete {
            continue;
        }
        match config.none_pass {
            NonePass::Drop => {}
            NonePass::Best => {
                let best = members
                    .iter()
                    .filter_map(|&i| states[i].validation.as_ref().map(|v| (i, v.pass_fraction)))
                    .fold(None::<(usize, f64)>, |acc, (i, f)| match acc {
                        Some((_, g)) if g >= f => acc,
                        _ => Some((i, f)),
                    });
                if let Some((i, _)) = best {
                    states[i].outcome = Some(Outcome::KeptBest);
                }
            }
            NonePass::Unvalidated => {
                for &i in members {
                    if matches!(
                        states[i].outcome,
                        Some(Outcome::FailedValidation | Outcome::BadCodeAnswer { .. })
                    ) || matches!(
                        &states[i].outcome,
                        Some(Outcome::RequestFailed { stage, .. }) if stage == "code"
                    ) {
                        states[i].outcome = Some(Outcome::KeptUnvalidated);
                    }
                }
            }
        }
    }
}

/// Builds the output records, in problem then candidate order (so reruns and resumed runs
/// write identical files).
pub(super) fn records(
    run: &Run,
    cands: &[Candidate],
    states: Vec<State>,
) -> (Vec<PlanRecord>, Vec<CandidateRecord>) {
    let template_hash = run.templates.hash(run.config.reasoning);
    let mut plans = Vec::new();
    let mut records = Vec::new();
    for (c, s) in cands.iter().zip(states) {
        let problem = &run.problems[c.problem];
        let outcome = s.outcome.expect("every candidate is decided");
        if outcome.is_kept() {
            plans.push(PlanRecord {
                problem_id: problem.id.clone(),
                plan: s.plan.clone().expect("kept plans have text"),
                solution_idx: c.solution_idx,
                sample_idx: c.sample_idx,
                reasoning: run.config.reasoning.name().to_owned(),
                validated: outcome == Outcome::Kept && run.config.validate,
                validation: s.validation.clone(),
                teacher_model: run.teacher.model.clone(),
                template_hash: template_hash.clone(),
                usage: s.usage,
                difficulty: problem.difficulty.clone(),
            });
        }
        records.push(CandidateRecord {
            problem_id: problem.id.clone(),
            candidate: c.index,
            solution_idx: c.solution_idx,
            sample_idx: c.sample_idx,
            difficulty: problem.difficulty.clone(),
            plan_key: s.plan_key,
            plan: s.plan,
            code_key: s.code_key,
            validation: s.validation,
            usage: s.usage,
            outcome,
        });
    }
    (plans, records)
}
