//! A whole evaluation: resume, deduplication, optional time calibration, verdicts on disk
//! as they arrive, and the summary with metrics per difficulty.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use codeplan_data::{Problem, Sample, Tests};

use crate::judge::{self, JudgeKind, JudgeLimits, SampleVerdict};
use crate::pool::{Job, JudgeSettings, Pool};
use crate::sandbox::{Layers, SandboxLimits};
pub use crate::summary::{RunCounts, Summary, TimeoutReport};
use crate::ExecError;

/// Which judge to use: `auto` picks `apps` for input/output tests and `strict` for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeChoice {
    /// `apps` for APPS-style tests, `strict` for assertion-style tests.
    Auto,
    /// Always `apps` (problems with assertion tests are an error).
    Apps,
    /// Always `strict`.
    Strict,
}

impl JudgeChoice {
    /// The judge for `problem`.
    pub fn resolve(self, problem: &Problem) -> Result<JudgeKind, ExecError> {
        let kind = match (self, &problem.tests) {
            (JudgeChoice::Apps, _) => JudgeKind::Apps,
            (JudgeChoice::Strict, _) => JudgeKind::Strict,
            (JudgeChoice::Auto, Tests::Io(_)) => JudgeKind::Apps,
            (JudgeChoice::Auto, Tests::Check(_)) => JudgeKind::Strict,
        };
        judge::check_judgeable(kind, problem).map_err(|message| ExecError::Unjudgeable {
            problem_id: problem.id.clone(),
            message,
        })?;
        Ok(kind)
    }
}

/// Per-problem time limits scaled to the reference solution's measured time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Limit = `factor` × the reference solution's slowest test …
    pub factor: f64,
    /// … but never below this many seconds.
    pub floor_s: f64,
}

/// How to evaluate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Judge choice.
    pub judge: JudgeChoice,
    /// Default limits.
    pub limits: JudgeLimits,
    /// k values for pass@k (only those ≤ n for every problem are reported).
    pub ks: Vec<usize>,
    /// Re-run timed-out samples at twice the limits and count verdict flips.
    pub rerun_timeouts: bool,
    /// Calibrate each problem's limit to its reference solution.
    pub calibrate: Option<Calibration>,
}

/// What ran the programs: recorded in every summary so results can be reproduced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    /// Interpreter path.
    pub python_executable: String,
    /// Interpreter version.
    pub python: String,
    /// numpy version.
    pub numpy: String,
    /// The integer-to-string digit limit in force.
    pub int_max_str_digits: i64,
    /// Isolation layers in force.
    pub sandbox_layers: Layers,
    /// Layers that were not in force.
    pub sandbox_missing: Vec<String>,
    /// Syscalls the seccomp filter denies.
    pub seccomp_denies: Vec<String>,
    /// Sandbox resource limits.
    pub sandbox_limits: SandboxLimits,
    /// Worker processes.
    pub jobs: usize,
    /// codeplan version.
    pub codeplan_version: String,
}

impl Environment {
    /// Describes `pool`'s environment.
    pub fn of(pool: &Pool) -> Environment {
        let c = pool.config();
        Environment {
            python_executable: c.python.executable.display().to_string(),
            python: pool.hello().python.clone(),
            numpy: pool.hello().numpy.clone(),
            int_max_str_digits: pool.hello().int_max_str_digits,
            sandbox_layers: pool.layers(),
            sandbox_missing: pool
                .layers()
                .missing()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            seccomp_denies: crate::sandbox::seccomp::denied_names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sandbox_limits: c.limits.clone(),
            jobs: c.jobs,
            codeplan_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Progress of a running evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Samples done (reused ones included).
    pub done: usize,
    /// Samples in total.
    pub total: usize,
    /// Samples passed so far.
    pub passed: usize,
}

/// A verdict line in `verdicts.jsonl`: the verdict plus the key of the settings it was judged under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerdictLine {
    /// Hash of judge, limits, interpreter and engine version.
    pub settings_key: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: SampleVerdict,
}

fn settings_key(kind: JudgeKind, limits: &JudgeLimits, env: &Environment, rerun: bool) -> String {
    let text = serde_json::json!({
        "kind": kind, "limits": limits, "python": env.python, "numpy": env.numpy,
        "version": env.codeplan_version, "rerun": rerun, "worker": judge::sha256_hex(crate::worker::SOURCE),
        "memory": env.sandbox_limits.memory_bytes,
    })
    .to_string();
    judge::sha256_hex(&text)[..16].to_owned()
}

/// The result of [`evaluate`]: the summary and every verdict.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Metrics and counts.
    pub summary: Summary,
    /// One line per sample (reused and new), in problem order, then sample order.
    pub verdicts: Vec<VerdictLine>,
}

/// Runs the evaluation, writing `verdicts.jsonl` (appended as verdicts arrive, then rewritten
/// in problem order — the order of `problems` — and sample order), `summary.json` and
/// `summary.md` in `out_dir`.
pub fn evaluate(
    pool: &Pool,
    problems: &[Problem],
    samples: &[Sample],
    options: &EvalOptions,
    out_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Evaluation, ExecError> {
    let started = std::time::Instant::now();
    let io_err = |what: &str, e: std::io::Error| ExecError::Output(format!("{what}: {e}"));
    fs::create_dir_all(out_dir).map_err(|e| io_err(&out_dir.display().to_string(), e))?;
    let env = Environment::of(pool);
    let by_id: HashMap<&str, Arc<Problem>> = problems
        .iter()
        .map(|p| (p.id.as_str(), Arc::new(p.clone())))
        .collect();

    // Resolve judge and limits per problem.
    let mut plan: HashMap<String, (JudgeKind, JudgeLimits)> = HashMap::new();
    for s in samples {
        let p = by_id
            .get(s.problem_id.as_str())
            .ok_or_else(|| ExecError::Unjudgeable {
                problem_id: s.problem_id.clone(),
                message: "sample refers to a problem that is not in the data".into(),
            })?;
        if !plan.contains_key(&p.id) {
            plan.insert(
                p.id.clone(),
                (options.judge.resolve(p)?, options.limits.clone()),
            );
        }
    }
    if let Some(cal) = options.calibrate {
        calibrate(pool, &by_id, &mut plan, cal);
    }

    // Resume: keep verdicts judged under the same settings for the same code.
    let verdicts_path = out_dir.join("verdicts.jsonl");
    let mut reusable: HashMap<(String, usize, String), VerdictLine> = HashMap::new();
    if let Ok(f) = File::open(&verdicts_path) {
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            // A torn last line (killed mid-write) is simply not reused.
            if let Ok(v) = serde_json::from_str::<VerdictLine>(&line) {
                let key = (
                    v.verdict.problem_id.clone(),
                    v.verdict.sample_idx,
                    v.verdict.code_sha256.clone(),
                );
                reusable.insert(key, v);
            }
        }
    }
    let mut kept: Vec<VerdictLine> = Vec::new();
    let mut todo: Vec<(Sample, String, String)> = Vec::new(); // sample, code sha, settings key
    for s in samples {
        let (kind, limits) = &plan[&s.problem_id];
        let key = settings_key(*kind, limits, &env, options.rerun_timeouts);
        let sha = judge::sha256_hex(&s.code);
        match reusable.remove(&(s.problem_id.clone(), s.sample_idx, sha.clone())) {
            Some(v) if v.settings_key == key => kept.push(v),
            _ => todo.push((s.clone(), sha, key)),
        }
    }
    // Rewrite the file with only what is reused, atomically, then append as verdicts arrive.
    let tmp = out_dir.join("verdicts.jsonl.tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io_err("verdicts.jsonl.tmp", e))?;
        for v in &kept {
            writeln!(
                f,
                "{}",
                serde_json::to_string(v).expect("verdict serialises")
            )
            .map_err(|e| io_err("verdicts.jsonl.tmp", e))?;
        }
        f.sync_all().map_err(|e| io_err("verdicts.jsonl.tmp", e))?;
    }
    fs::rename(&tmp, &verdicts_path).map_err(|e| io_err("verdicts.jsonl", e))?;
    let mut out = OpenOptions::new()
        .append(true)
        .open(&verdicts_path)
        .map_err(|e| io_err("verdicts.jsonl", e))?;

    // Deduplicate identical code per problem: judge once, record for every sample.
    let mut groups: HashMap<(String, String), Vec<(Sample, String)>> = HashMap::new();
    let mut jobs = Vec::new();
    let mut duplicates = 0;
    for (s, sha, key) in todo.iter().cloned() {
        let entry = groups.entry((s.problem_id.clone(), sha)).or_default();
        if entry.is_empty() {
            let (kind, limits) = plan[&s.problem_id].clone();
            jobs.push(Job {
                problem: by_id[s.problem_id.as_str()].clone(),
                sample: s.clone(),
                kind,
                limits,
            });
        } else {
            duplicates += 1;
        }
        entry.push((s, key));
    }

    let mut state = Progress {
        done: kept.len(),
        total: samples.len(),
        passed: kept.iter().filter(|v| v.verdict.passed).count(),
    };
    progress(state);
    let mut all: Vec<VerdictLine> = kept;
    let reused = all.len();
    let mut write_error = None;
    let settings = JudgeSettings {
        rerun_timeouts: options.rerun_timeouts,
    };
    pool.judge_all(jobs, &settings, |v| {
        let group = &groups[&(v.problem_id.clone(), v.code_sha256.clone())];
        for (s, key) in group {
            let mut copy = v.clone();
            copy.sample_idx = s.sample_idx;
            let line = VerdictLine {
                settings_key: key.clone(),
                verdict: copy,
            };
            let text = serde_json::to_string(&line).expect("verdict serialises");
            if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
                write_error.get_or_insert(e);
            }
            state.done += 1;
            state.passed += usize::from(line.verdict.passed);
            all.push(line);
        }
        progress(state);
    });
    if let Some(e) = write_error {
        return Err(io_err("verdicts.jsonl", e));
    }
    out.sync_all().map_err(|e| io_err("verdicts.jsonl", e))?;
    drop(out);

    // Verdicts arrive in completion order, which differs from run to run; the finished file is
    // rewritten in problem (selection) order, then sample order, so two runs of the same
    // samples — or the merged shards of one — write their lines in the same order.
    let position: HashMap<&str, usize> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    all.sort_by_key(|v| {
        (
            position[v.verdict.problem_id.as_str()],
            v.verdict.sample_idx,
        )
    });
    write_atomic(&verdicts_path, &verdicts_jsonl(&all)).map_err(|e| io_err("verdicts.jsonl", e))?;

    let difficulty: HashMap<String, String> = problems
        .iter()
        .map(|p| (p.id.clone(), p.difficulty_label().to_owned()))
        .collect();
    let summary = Summary::from_verdicts(
        &difficulty,
        &all,
        options,
        env,
        RunCounts {
            reused,
            judged_now: all.len() - reused,
            duplicates,
            wall_s: started.elapsed().as_secs_f64(),
        },
    );
    write_summary(out_dir, &summary)?;
    Ok(Evaluation {
        summary,
        verdicts: all,
    })
}

/// Verdict lines as `verdicts.jsonl` holds them.
pub fn verdicts_jsonl(lines: &[VerdictLine]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in lines {
        serde_json::to_writer(&mut out, v).expect("verdict serialises");
        out.push(b'\n');
    }
    out
}

/// Writes `summary.json` and `summary.md` into `out_dir`, each atomically.
pub fn write_summary(out_dir: &Path, summary: &Summary) -> Result<(), ExecError> {
    let io_err = |what: &str, e: std::io::Error| ExecError::Output(format!("{what}: {e}"));
    write_atomic(
        &out_dir.join("summary.json"),
        &serde_json::to_vec_pretty(summary).expect("summary serialises"),
    )
    .map_err(|e| io_err("summary.json", e))?;
    write_atomic(
        &out_dir.join("summary.md"),
        summary.to_markdown().as_bytes(),
    )
    .map_err(|e| io_err("summary.md", e))
}

/// Writes a file through a temporary name and a rename, so a crash never leaves half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)
}

fn calibrate(
    pool: &Pool,
    by_id: &HashMap<&str, Arc<Problem>>,
    plan: &mut HashMap<String, (JudgeKind, JudgeLimits)>,
    cal: Calibration,
) {
    let mut jobs = Vec::new();
    for (id, (kind, limits)) in plan.iter() {
        let p = &by_id[id.as_str()];
        if let Some(code) = p.solutions.first() {
            jobs.push(Job {
                problem: p.clone(),
                sample: Sample {
                    problem_id: id.clone(),
                    sample_idx: 0,
                    code: code.clone(),
                },
                kind: *kind,
                limits: limits.clone(),
            });
        }
    }
    let mut measured: Vec<(String, f64)> = Vec::new();
    pool.judge_all(jobs, &JudgeSettings::default(), |v| {
        if v.passed {
            let slowest = v.tests.iter().map(|t| t.time_s).fold(0.0, f64::max);
            measured.push((v.problem_id.clone(), slowest));
        }
    });
    for (id, slowest) in measured {
        if let Some((_, limits)) = plan.get_mut(&id) {
            limits.test_timeout_s = (slowest * cal.factor).max(cal.floor_s);
        }
    }
}
