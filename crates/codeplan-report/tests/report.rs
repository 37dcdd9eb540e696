//! The report end to end, from files in the formats codeplan writes.

mod common;

use codeplan_exec::metrics::pass_at_k;
use codeplan_report::{
    build, compare, read, render_comparison_markdown, render_html, render_markdown, write, Report,
};
use common::{input, metrics, passes, plans_summary, problem, variant, O};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// C(n, k) for small numbers, to check pass@k by hand.
fn choose(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).map(|i| (n - i) as f64 / (k - i) as f64).product()
}

fn apps_eval() -> Vec<codeplan_data::Problem> {
    vec![
        problem("a", Some("introductory"), "Print the sum of two numbers."),
        problem(
            "b",
            Some("interview"),
            "Sort the array and print the median.",
        ),
        problem("c", Some("interview"), "Count the islands in the grid."),
        problem(
            "d",
            Some("competition"),
            "Find the shortest path in a weighted graph.",
        ),
        problem(
            "e",
            Some("competition"),
            "A problem nobody generated samples for.",
        ),
        problem(
            "f",
            Some("interview"),
            "A problem whose samples all broke the engine.",
        ),
    ]
}

/// Baseline and codeplan on `apps_eval`, the baseline with an internal error in c.
fn two_variants(dir: &std::path::Path) -> codeplan_report::ReportInput {
    use O::*;
    let base = variant(
        dir,
        "baseline",
        true,
        &[
            ("a", vec![P, F, P, F]),
            ("b", vec![F, F, F, F]),
            ("c", vec![P, E, F, F]),
            ("d", vec![P, P, P, P]),
            ("f", vec![E, E]),
        ],
    );
    let plan = variant(
        dir,
        "codeplan",
        false,
        &[
            ("a", passes(4, 4)),
            ("b", vec![P, F, F, F]),
            ("c", passes(2, 4)),
            ("d", passes(4, 4)),
        ],
    );
    let mut i = input(apps_eval(), vec![base, plan]);
    i.ks = vec![1, 2, 5];
    i
}

#[test]
fn pass_at_k_is_what_the_verdicts_say() {
    let dir = tempfile::tempdir().unwrap();
    let r = build(&two_variants(dir.path())).unwrap();
    let b = &r.variants[0];
    assert!(b.baseline);
    // c/n per problem, the internal error in c excluded (n = 3 there).
    let p1 = (2.0 / 4.0 + 0.0 + 1.0 / 3.0 + 1.0) / 4.0;
    assert!(close(b.overall.pass_at_k[&1], p1), "{:?}", b.overall);
    let p2 = |c: usize, n: usize| 1.0 - choose(n - c, 2) / choose(n, 2);
    let expected2 = (p2(2, 4) + p2(0, 4) + p2(1, 3) + p2(4, 4)) / 4.0;
    assert!(close(b.overall.pass_at_k[&2], expected2));
    assert!(close(p2(2, 4), pass_at_k(4, 2, 2)));
    // k = 5 > n: not reported.
    assert!(!b.overall.pass_at_k.contains_key(&5));
    assert_eq!(
        (
            b.overall.problems,
            b.overall.samples,
            b.overall.correct_samples
        ),
        (4, 15, 7)
    );
    assert_eq!(b.internal_errors, 3);
    assert_eq!(b.unscored_problems, ["e", "f"]);
    let interview = &b.by_difficulty["interview"];
    assert_eq!((interview.problems, interview.samples), (2, 7));
    assert!(close(interview.pass_at_k[&1], (0.0 + 1.0 / 3.0) / 2.0));
    assert!(close(b.by_difficulty["competition"].pass_at_k[&1], 1.0));
    assert_eq!(r.difficulties, ["introductory", "interview", "competition"]);
    // Per-problem results keep every sample, the internal error included.
    let c = b.problems.iter().find(|p| p.problem_id == "c").unwrap();
    assert_eq!((c.c, c.n, c.samples.len()), (1, 3, 4));
    let f = b.problems.iter().find(|p| p.problem_id == "f").unwrap();
    assert_eq!((f.c, f.n), (0, 0));

    let v = &r.variants[1];
    assert!(close(
        v.overall.pass_at_k[&1],
        (1.0 + 0.25 + 0.5 + 1.0) / 4.0
    ));
    // The improvement rests on the four problems both scored.
    let imp = r.improvements[0].overall.as_ref().unwrap();
    assert_eq!(imp.problems, 4);
    assert!(close(imp.baseline, p1));
    assert!(close(imp.absolute, (1.0 + 0.25 + 0.5 + 1.0) / 4.0 - p1));
    assert!(imp.absolute_ci[0] <= imp.absolute && imp.absolute <= imp.absolute_ci[1]);
    assert_eq!(r.improvements[0].by_difficulty["interview"].problems, 2);
    // Four problems are too few for the interval to carry a claim.
    assert!(
        imp.verdict.starts_with("only 4 problems: too few"),
        "{}",
        imp.verdict
    );
}

#[test]
fn problems_without_levels_are_their_own_unrated_group_beside_apps_levels() {
    use O::*;
    let dir = tempfile::tempdir().unwrap();
    let mut eval = apps_eval();
    eval.push(problem("MbppEval/2", None, "Return the shared elements."));
    let scores = [
        ("a", vec![P, F]),
        ("b", vec![F, F]),
        ("MbppEval/2", vec![P, P]),
    ];
    let base = variant(dir.path(), "baseline", true, &scores);
    let plan = variant(dir.path(), "codeplan", false, &scores);
    let r = build(&input(eval, vec![base, plan])).unwrap();
    assert_eq!(
        r.difficulties,
        ["introductory", "interview", "competition", "unrated"]
    );
    let unrated = &r.variants[0].by_difficulty["unrated"];
    assert_eq!((unrated.problems, unrated.samples), (1, 2));
    let md = render_markdown(&r);
    assert_eq!(
        md.matches("| baseline | unrated | 1 | 2 |").count(),
        1,
        "{md}"
    );
    assert_eq!(
        md.matches("| baseline | overall | 3 | 6 |").count(),
        1,
        "{md}"
    );
    assert!(!md.contains("| all |"), "{md}");
}

#[test]
fn examples_prefer_problems_where_the_verdicts_differ() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = two_variants(dir.path());
    i.examples = 2;
    let r = build(&i).unwrap();
    assert_eq!(r.examples.len(), 2);
    let e = &r.examples[0];
    // b: only the variant's first sample passed; then a and c differ in their share of passes.
    assert_eq!(e.problem_id, "b");
    assert!(e.why.contains("only the variant"));
    assert_eq!(e.baseline.code, common::code("baseline", "b", 0));
    assert_eq!(e.variant.code, common::code("codeplan", "b", 0));
    assert!(!e.baseline.passed && e.variant.passed);
    assert_eq!((e.variant.c, e.variant.n), (1, 4));
    assert!(e.question.contains("median"));
    assert_eq!(r.examples[1].problem_id, "a");
    i.examples = 0;
    assert!(build(&i).unwrap().examples.is_empty());
}

/// `n` problems (none with a difficulty), each with two samples: `base(i)` and `var(i)` passes.
fn paired_case(
    dir: &std::path::Path,
    n: usize,
    base: impl Fn(usize) -> usize,
    var: impl Fn(usize) -> usize,
) -> codeplan_report::ReportInput {
    let ids: Vec<String> = (0..n).map(|i| format!("HumanEval/{i}")).collect();
    let eval = ids
        .iter()
        .map(|id| problem(id, None, "def f(x): pass"))
        .collect();
    let b: Vec<(&str, Vec<O>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), passes(base(i), 2)))
        .collect();
    let v: Vec<(&str, Vec<O>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), passes(var(i), 2)))
        .collect();
    input(
        eval,
        vec![
            variant(dir, "baseline", true, &b),
            variant(dir, "codeplan", false, &v),
        ],
    )
}

#[test]
fn a_clear_gain_has_an_interval_above_zero() {
    let dir = tempfile::tempdir().unwrap();
    let i = paired_case(
        dir.path(),
        60,
        |i| usize::from(i % 6 == 0),
        |i| if i % 3 == 0 { 1 } else { 2 },
    );
    let r = build(&i).unwrap();
    let d = r.improvements[0].overall.as_ref().unwrap();
    assert!(d.absolute_ci[0] > 0.0, "{d:?}");
    assert!(
        d.verdict.contains("solves more than the baseline"),
        "{}",
        d.verdict
    );
    assert!(d.relative.unwrap() > 1.0);
    // Without difficulties the only group is "unrated".
    assert_eq!(r.difficulties, ["unrated"]);
    assert!(r.improvements[0].by_difficulty.is_empty());
    // One "overall" row in pass@k, one in the differences; no "unrated" row repeating it.
    let md = render_markdown(&r);
    assert_eq!(md.matches("| codeplan | overall |").count(), 2, "{md}");
    assert!(!md.contains("| unrated |"), "{md}");
}

#[test]
fn no_difference_has_an_interval_around_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Both pass a quarter of the problems, different ones.
    let i = paired_case(
        dir.path(),
        40,
        |i| 2 * usize::from(i < 10),
        |i| 2 * usize::from((5..15).contains(&i)),
    );
    let r = build(&i).unwrap();
    let d = r.improvements[0].overall.as_ref().unwrap();
    assert_eq!(d.absolute, 0.0);
    assert!(d.absolute_ci[0] < 0.0 && d.absolute_ci[1] > 0.0, "{d:?}");
    assert!(
        d.verdict
            .contains("includes 0: no evidence of a difference"),
        "{}",
        d.verdict
    );
    assert!(render_markdown(&r).contains("no evidence of a difference"));
}

#[test]
fn bootstrap_is_reproducible_with_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = paired_case(
        dir.path(),
        30,
        |i| usize::from(i % 3 == 0),
        |i| usize::from(i % 2 == 0),
    );
    let a = build(&i).unwrap();
    let b = build(&i).unwrap();
    assert_eq!(a.improvements, b.improvements);
    let d = a.improvements[0].overall.as_ref().unwrap();
    assert!(
        d.absolute_ci[0] <= d.absolute && d.absolute <= d.absolute_ci[1],
        "{d:?}"
    );
    let (r, ci) = (d.relative.unwrap(), d.relative_ci.unwrap());
    assert!(ci[0] <= r && r <= ci[1]);
    i.bootstrap.seed = 7;
    let c = build(&i).unwrap();
    assert_ne!(
        c.improvements[0].overall.as_ref().unwrap().absolute_ci,
        d.absolute_ci
    );
    assert_eq!(
        c.improvements[0].overall.as_ref().unwrap().absolute,
        d.absolute
    );
}

fn no_nan_anywhere(r: &Report) {
    let json = serde_json::to_string(r).unwrap();
    for bad in ["NaN", "inf", "null,\"absolute"] {
        assert!(!json.contains(bad), "{bad} in {json}");
    }
    for text in [render_markdown(r), render_html(r)] {
        assert!(!text.contains("NaN") && !text.contains("inf%") && !text.contains("inf "));
    }
}

#[test]
fn a_zero_baseline_makes_the_relative_change_undefined_not_infinite() {
    let dir = tempfile::tempdir().unwrap();
    let r = build(&paired_case(dir.path(), 20, |_| 0, |i| usize::from(i < 3))).unwrap();
    let d = r.improvements[0].overall.as_ref().unwrap();
    assert_eq!(d.baseline, 0.0);
    assert_eq!((d.relative, d.relative_ci), (None, None));
    assert!(d.relative_note.as_ref().unwrap().contains("undefined"));
    assert!(d.absolute_ci.iter().all(|x| x.is_finite()));
    assert!(d.absolute_ci[0] <= d.absolute && d.absolute <= d.absolute_ci[1]);
    assert_eq!(d.zero_baseline_resamples, 2000);
    no_nan_anywhere(&r);
    let md = render_markdown(&r);
    assert!(md.contains("undefined"), "{md}");

    // A baseline that passes a single problem is 0 in many resamples: no relative interval.
    let dir = tempfile::tempdir().unwrap();
    let r = build(&paired_case(
        dir.path(),
        20,
        |i| usize::from(i == 0),
        |i| usize::from(i < 3),
    ))
    .unwrap();
    let d = r.improvements[0].overall.as_ref().unwrap();
    assert!(d.relative.is_some() && d.relative_ci.is_none());
    assert!(d.zero_baseline_resamples > 0);
    assert!(d.relative_note.as_ref().unwrap().contains("resamples"));
    no_nan_anywhere(&r);
}

const LONG: &str = "Vasya has a sequence of n integers and wants to know how many pairs of adjacent elements have an odd sum, and he asks you to write a program that prints this number for every test case";

#[test]
fn contamination_flags_copied_questions_only() {
    let dir = tempfile::tempdir().unwrap();
    let eval = vec![
        problem("copied", Some("interview"), LONG),
        problem("in-a-plan", Some("interview"), "Petya likes strings consisting of lowercase letters and wants to find the longest substring in which every letter appears an even number of times, print its length"),
        problem("unrelated", Some("interview"), "Given a tree with weighted edges, answer queries about the maximum edge on the path between two vertices, using binary lifting or heavy-light decomposition efficiently"),
        problem("short", Some("interview"), "Print hello."),
    ];
    // The copy differs only in case and punctuation.
    let train = vec![
        problem(
            "t1",
            Some("interview"),
            &LONG.to_uppercase().replace(',', " ;"),
        ),
        problem("t2", Some("interview"), "Print hello world."),
    ];
    let plans = dir.path().join("plans.jsonl");
    std::fs::write(&plans, format!("{}\n{}\n",
        serde_json::json!({"problem_id": "t9", "plan": "1. Read the input. 2. Note that petya likes strings consisting of lowercase letters and wants to find the longest substring in which every letter appears an even number of times, print its length. 3. Use prefix parity masks."}),
        serde_json::json!({"problem_id": 10, "plan": "1. Build the graph. 2. Run BFS."}))).unwrap();
    let base = variant(dir.path(), "baseline", true, &[("copied", passes(1, 1))]);
    let mut i = input(eval, vec![base]);
    i.train_problems = train;
    i.plan_files = vec![plans.clone()];
    let r = build(&i).unwrap();
    let c = &r.contamination;
    assert_eq!((c.n, c.train_questions, c.plans), (13, 2, 2));
    let by = |id: &str| c.problems.iter().find(|p| p.problem_id == id).unwrap();
    assert!(by("copied").flagged);
    assert_eq!(by("copied").exact_duplicate_of.as_deref(), Some("t1"));
    assert_eq!(by("copied").max_overlap, 1.0);
    assert_eq!(by("copied").source.as_deref(), Some("train question t1"));
    let p = by("in-a-plan");
    assert!(p.flagged && p.max_overlap == 1.0 && p.exact_duplicate_of.is_none());
    assert!(
        p.source.as_deref().unwrap().contains("plan for t9"),
        "{p:?}"
    );
    assert!(p.source.as_deref().unwrap().contains("plans.jsonl:1"));
    assert!(!by("unrelated").flagged);
    assert_eq!(by("unrelated").max_overlap, 0.0);
    assert!(!by("short").flagged && by("short").ngrams == 0);
    assert_eq!((c.flagged, c.exact_duplicates), (2, 1));
    let md = render_markdown(&r);
    assert!(
        md.contains("**2 of 4 evaluation problems flagged** (1 exact duplicates)"),
        "{md}"
    );
}

#[test]
fn renderings_carry_the_numbers_and_nothing_external() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = two_variants(dir.path());
    i.variants[0].train_metrics = Some(metrics(dir.path(), "baseline", &[2.5, 1.8, 1.2]));
    i.variants[1].train_metrics = Some(metrics(dir.path(), "codeplan", &[2.6, 1.7, 1.1, 0.9]));
    i.variants[1].plans_summary = Some(plans_summary(dir.path()));
    i.manifest = serde_json::json!({
        "codeplan": "0.1.0", "seed": 0,
        "stages": [{"stage": "train", "wall_s": 12.5}, {"stage": "eval", "wall_s": 3.0}],
        "machine": {"cpus": 2, "model": "Zen 4"}
    });
    let r = build(&i).unwrap();
    let plans = r.variants[1].plans.as_ref().unwrap();
    assert_eq!((plans.judged, plans.passed), (8, 5));
    assert!(close(plans.validation_pass_rate.unwrap(), 5.0 / 8.0));
    assert_eq!(plans.plans_per_problem, Some((2.0, 1, 3)));
    assert_eq!(r.variants[1].loss.as_ref().unwrap().len(), 4);

    let md = render_markdown(&r);
    // Baseline pass@1 = 11/24 = 45.83%; codeplan 68.75%; difference +22.92 pp.
    for needle in [
        "45.83%",
        "68.75%",
        "+22.92 pp",
        "| baseline | interview | 2 | 7 |",
        "62.50% (5/8)",
        "2.00 (1–3)",
        "| codeplan | 4 | 2.6000 | 0.9000 | 0.9000 |",
        "- stage: train, wall_s: 12.5",
        "Zen 4",
        "## Examples",
    ] {
        assert!(md.contains(needle), "{needle} missing from\n{md}");
    }
    let html = render_html(&r);
    for needle in [
        "45.83%",
        "68.75%",
        "+22.92 pp",
        "<svg",
        "<polyline",
        "62.50% (5/8)",
        "<th>wall_s</th>",
        "Zen 4",
        "# codeplan b 0",
    ] {
        assert!(html.contains(needle), "{needle} missing from the html");
    }
    for external in [
        "src=\"http",
        "<link",
        "<script",
        "href=\"http",
        "url(",
        "@import",
        "http://",
        "https://",
    ] {
        assert!(!html.contains(external), "{external} in the html");
    }
    assert_eq!(html.matches("<polyline").count(), 2);

    write(&r, &dir.path().join("out")).unwrap();
    for f in ["report.json", "report.md", "report.html"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f}");
    }
    assert!(!dir.path().join("out/report.tmp").exists());
    // report.json holds the report (compared through JSON: serde_json's float parsing may
    // differ from the written value in the last bit).
    let again: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(read(&dir.path().join("out/report.json")).unwrap(), again);
}

#[test]
fn compare_finds_the_changed_problems() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(&two_variants(&dir.path().join("a"))).unwrap();
    let mut i = two_variants(&dir.path().join("b"));
    // Run b: codeplan's second sample of c fails now; a third variant appears.
    let new = variant(
        &dir.path().join("b"),
        "codeplan",
        false,
        &[
            ("a", passes(4, 4)),
            ("b", vec![O::P, O::F, O::F, O::F]),
            ("c", passes(1, 4)),
            ("d", passes(4, 4)),
        ],
    );
    i.variants[1] = new;
    i.variants.push(variant(
        &dir.path().join("b"),
        "forward-plans",
        false,
        &[("a", passes(1, 4))],
    ));
    let b = build(&i).unwrap();
    let c = compare(&a, &b);
    assert_eq!(c.only_in_b, ["forward-plans"]);
    assert!(c.only_in_a.is_empty());
    let base = c.variants.iter().find(|v| v.name == "baseline").unwrap();
    assert!(base.changes.is_empty());
    assert_eq!(base.unchanged, 5);
    let v = c.variants.iter().find(|v| v.name == "codeplan").unwrap();
    assert_eq!(v.changes.len(), 1);
    let ch = &v.changes[0];
    assert_eq!(
        (ch.problem_id.as_str(), ch.a, ch.b),
        ("c", Some((2, 4)), Some((1, 4)))
    );
    assert_eq!(ch.samples_changed, [1]);
    let k1 = v.pass_at_k.iter().find(|k| k.k == 1).unwrap();
    assert!(close(k1.difference.unwrap(), -0.25 / 4.0));
    let md = render_comparison_markdown(&c);
    assert!(md.contains("| c | interview | 2/4 | 1/4 | 1 |"), "{md}");
    assert!(md.contains("-6.25 pp"), "{md}");
    assert!(md.contains("Variants only in b: forward-plans"));
}

#[test]
fn bad_files_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let i = two_variants(dir.path());
    let path = i.variants[1].verdicts.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        &path,
        format!("{first}\n{{\"problem_id\": \"a\", \"sample_idx\": tru\n"),
    )
    .unwrap();
    let e = build(&i).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:2:", path.display())), "{e}");
    assert!(e.contains("not a verdict line"), "{e}");

    std::fs::write(&path, format!("{first}\n{first}\n")).unwrap();
    let e = build(&i).unwrap_err().to_string();
    assert!(
        e.contains(":2:") && e.contains("already judged on line 1"),
        "{e}"
    );

    let other = serde_json::to_string(&common::verdict("zzz", 0, O::P)).unwrap();
    std::fs::write(&path, format!("{other}\n")).unwrap();
    let e = build(&i).unwrap_err().to_string();
    assert!(
        e.contains(":1:") && e.contains("zzz is not in the evaluation set"),
        "{e}"
    );

    std::fs::remove_file(&path).unwrap();
    let e = build(&i).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");

    let bad = dir.path().join("report.json");
    std::fs::write(&bad, "{\"title\": 3}").unwrap();
    let e = read(&bad).unwrap_err().to_string();
    assert!(
        e.contains("report.json") && e.contains("not a codeplan report.json"),
        "{e}"
    );
}

#[test]
fn inconsistent_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = two_variants(dir.path());
    i.variants[1].baseline = true;
    assert!(build(&i)
        .unwrap_err()
        .to_string()
        .contains("exactly one variant must be the baseline"));
    i.variants[1].baseline = false;
    i.variants[1].name = "baseline".into();
    assert!(build(&i)
        .unwrap_err()
        .to_string()
        .contains("two variants are named"));
    let mut i = two_variants(dir.path());
    i.bootstrap.confidence = 1.0;
    assert!(build(&i).is_err());
    let mut i = two_variants(dir.path());
    i.contamination.n = 0;
    assert!(build(&i).is_err());
}

#[test]
fn contamination_on_the_bundled_apps_data() {
    use codeplan_data::{load_problems, LoadOptions};
    let data = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/apps"));
    let load = |f: &str| {
        load_problems(&data.join(f), &LoadOptions::default())
            .unwrap()
            .problems
    };
    let (test, mut train) = (load("test.jsonl"), load("train.jsonl"));
    let dir = tempfile::tempdir().unwrap();
    let id = test[0].id.clone();
    let base = variant(dir.path(), "baseline", true, &[(id.as_str(), passes(1, 1))]);
    let mut i = input(test.clone(), vec![base]);
    i.train_problems = train.clone();
    let clean = build(&i).unwrap().contamination;
    assert_eq!(clean.train_questions, 154);
    // Real statements share boilerplate ("the first line contains ..."), but none is a copy.
    assert_eq!(clean.flagged, 0, "{:?}", clean.problems);
    assert!(clean
        .problems
        .iter()
        .all(|p| p.ngrams > 0 && p.max_overlap < 0.5));
    // Leak one test statement into the training set, lightly edited.
    let mut leaked = test[3].clone();
    leaked.id = "leak".into();
    leaked.question = format!("Note: {}\nGood luck!", leaked.question.to_lowercase());
    train.push(leaked);
    i.train_problems = train;
    let dirty = build(&i).unwrap().contamination;
    assert_eq!(dirty.flagged, 1);
    let p = &dirty.problems[3];
    assert!(p.flagged && p.max_overlap == 1.0 && p.exact_duplicate_of.is_none());
    assert_eq!(p.source.as_deref(), Some("train question leak"));
}

#[test]
#[ignore = "timing: cargo test -p codeplan-report --test report -- --ignored --nocapture"]
fn timing_of_a_full_size_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = paired_case(
        dir.path(),
        5000,
        |i| usize::from(i % 7 == 0),
        |i| usize::from(i % 5 == 0),
    );
    i.bootstrap.resamples = 10_000;
    let t = std::time::Instant::now();
    let r = build(&i).unwrap();
    eprintln!(
        "5000 problems x 2 samples, 10,000 resamples: {:?}",
        t.elapsed()
    );
    assert!(r.improvements[0].overall.as_ref().unwrap().absolute_ci[0] > 0.0);
}
