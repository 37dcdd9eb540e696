use super::*;
use codeplan_exec::judge::JudgeLimits;

fn config(none_pass: NonePass, tau: f64) -> DistillConfig {
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: 8,
    };
    DistillConfig {
        reasoning: Reasoning::Backward,
        plans_per_problem: 3,
        sampling: PlanSampling::Mixed,
        plan: sampling,
        code: sampling,
        seed: 0,
        validate: true,
        min_pass_fraction: tau,
        none_pass,
        leak: LeakGuard::default(),
        judge: JudgeChoice::Auto,
        limits: JudgeLimits::default(),
    }
}

fn judged(fraction: f64) -> State {
    State {
        plan: Some("1. x".into()),
        validation: Some(Validation {
            code: String::new(),
            passed: fraction >= 1.0,
            pass_fraction: fraction,
            tests_passed: (fraction * 4.0) as usize,
            tests_total: 4,
            status: "failed".into(),
            test_statuses: vec![],
        }),
        ..State::default()
    }
}

/// Problem 0: fractions 0.25, 0.75, 0.5 (none passes all); problem 1: one passes all.
fn run_policy(none_pass: NonePass, tau: f64) -> Vec<&'static str> {
    let cands: Vec<Candidate> = (0..5)
        .map(|i| Candidate {
            problem: usize::from(i >= 3),
            index: i % 3,
            solution_idx: Some(0),
            sample_idx: 0,
        })
        .collect();
    let mut states = vec![
        judged(0.25),
        judged(0.75),
        judged(0.5),
        judged(1.0),
        State {
            plan: Some("1. y".into()),
            outcome: Some(Outcome::Leak {
                leak: crate::leak::Leak::CodeFence,
            }),
            ..State::default()
        },
    ];
    decide(&config(none_pass, tau), &cands, &mut states);
    states
        .iter()
        .map(|s| s.outcome.as_ref().unwrap().name())
        .collect()
}

#[test]
fn acceptance_policies() {
    assert_eq!(
        run_policy(NonePass::Drop, 1.0),
        [
            "failed_validation",
            "failed_validation",
            "failed_validation",
            "kept",
            "leak"
        ]
    );
    assert_eq!(
        run_policy(NonePass::Best, 1.0),
        [
            "failed_validation",
            "kept_best",
            "failed_validation",
            "kept",
            "leak"
        ]
    );
    assert_eq!(
        run_policy(NonePass::Unvalidated, 1.0),
        [
            "kept_unvalidated",
            "kept_unvalidated",
            "kept_unvalidated",
            "kept",
            "leak"
        ]
    );
    assert_eq!(
        run_policy(NonePass::Drop, 0.5),
        ["failed_validation", "kept", "kept", "kept", "leak"],
        "τ = 0.5 accepts plans whose code passes half the tests"
    );
}

#[test]
fn candidates_prefer_distinct_short_solutions() {
    let problem = Problem {
        id: "p".into(),
        source: codeplan_data::Source::Apps,
        split: None,
        question: "q".into(),
        starter_code: String::new(),
        difficulty: None,
        tests: codeplan_data::Tests::Io(codeplan_data::IoTests {
            fn_name: None,
            inputs: vec![],
            outputs: vec![],
        }),
        solutions: vec![
            "long solution".into(),
            "short".into(),
            "short".into(),
            "".into(),
        ],
    };
    let picks = |sampling, k| {
        let mut c = config(NonePass::Drop, 1.0);
        c.sampling = sampling;
        c.plans_per_problem = k;
        candidates(std::slice::from_ref(&problem), &c)
            .iter()
            .map(|c| (c.solution_idx.unwrap(), c.sample_idx))
            .collect::<Vec<_>>()
    };
    assert_eq!(picks(PlanSampling::Solutions, 5), [(1, 0), (0, 0)]);
    assert_eq!(picks(PlanSampling::Samples, 3), [(1, 0), (1, 1), (1, 2)]);
    assert_eq!(
        picks(PlanSampling::Mixed, 5),
        [(1, 0), (0, 0), (1, 1), (0, 1), (1, 2)]
    );
    let mut forward = config(NonePass::Drop, 1.0);
    forward.reasoning = Reasoning::Forward;
    forward.plans_per_problem = 2;
    let f = candidates(std::slice::from_ref(&problem), &forward);
    assert!(f.iter().all(|c| c.solution_idx.is_none()));
    assert_eq!(f.len(), 2);
}
