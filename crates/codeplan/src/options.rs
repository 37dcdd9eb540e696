//! Arguments shared by the verbs, and the TOML config file they can also come from.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::Value;

use codeplan_data::{load_all, Format, LoadOptions, Problem, Selection, Shard, ShardRecord};
use codeplan_exec::eval::{Calibration, JudgeChoice};
use codeplan_exec::judge::JudgeLimits;
use codeplan_exec::pool::{Pool, PoolConfig};
use codeplan_exec::python::PythonInfo;

/// Which problems to load.
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataArgs {
    /// Problems: APPS JSONL or folder, HumanEval .jsonl(.gz), MBPP JSONL (repeatable).
    #[arg(long = "data", value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Input format (default: detected from the path and the first record).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
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
    /// Skip malformed records (each reported) instead of stopping at the first.
    #[arg(long)]
    #[serde(default)]
    pub skip_invalid: bool,
}

/// Dataset formats accepted by `--format`.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatArg {
    /// APPS (codeparrot JSONL or the original folder layout).
    Apps,
    /// OpenAI HumanEval.
    Humaneval,
    /// MBPP sanitized (CodeT form).
    Mbpp,
}

impl DataArgs {
    /// Fills unset fields from the config file's values.
    pub fn merge(&mut self, file: DataArgs) {
        if self.data.is_empty() {
            self.data = file.data;
        }
        self.format = self.format.or(file.format);
        self.ids = self.ids.take().or(file.ids);
        self.difficulty = self.difficulty.take().or(file.difficulty);
        self.limit = self.limit.or(file.limit);
        self.skip_invalid |= file.skip_invalid;
    }

    /// Loads and selects the problems, reporting skipped records on stderr.
    pub fn load(&self) -> Result<Vec<Problem>> {
        if self.data.is_empty() {
            bail!("no problems given: pass --data PATH (e.g. --data data/apps/test.jsonl)");
        }
        let opts = LoadOptions {
            skip_invalid: self.skip_invalid,
            format: match self.format {
                None => Format::Auto,
                Some(FormatArg::Apps) => Format::Apps,
                Some(FormatArg::Humaneval) => Format::HumanEval,
                Some(FormatArg::Mbpp) => Format::Mbpp,
            },
        };
        let loaded = load_all(&self.data, &opts)?;
        if !loaded.skipped.is_empty() {
            eprintln!(
                "warning: skipped {} invalid record(s) (--skip-invalid):",
                loaded.skipped.len()
            );
            for s in &loaded.skipped {
                eprintln!("  {s}");
            }
        }
        let selection = Selection {
            ids: self.ids.clone(),
            difficulties: self.difficulty.clone(),
            limit: self.limit,
        };
        let problems = selection.apply(loaded.problems)?;
        if problems.is_empty() {
            bail!("the selection matched no problems");
        }
        Ok(problems)
    }
}

/// How to judge: judge choice, limits, sandbox and workers.
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeArgs {
    /// apps: the APPS reference semantics; strict: real __main__ scripts, CPU limits, token
    /// comparison; auto: apps for input/output tests, strict for assertion tests.
    #[arg(long, value_enum)]
    pub judge: Option<JudgeArg>,
    /// Per-test time limit in seconds (apps: wall-clock alarm, reference 4; strict: CPU).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// apps: whole-sample wall-clock limit in seconds (reference 11).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub sample_timeout: Option<f64>,
    /// Calibrate each problem's time limit to FACTOR × its reference solution's slowest test.
    #[arg(long, value_name = "FACTOR", allow_negative_numbers = true)]
    pub calibrate: Option<f64>,
    /// With --calibrate: the smallest time limit, seconds.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub time_floor: Option<f64>,
    /// Do not re-run timed-out samples at twice the limit (re-runs only report flips).
    #[arg(long)]
    #[serde(default)]
    pub no_rerun_timeouts: bool,
    /// Memory cap per judged program, MiB (address space and cgroup).
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u64>,
    /// Output cap per test, MiB.
    #[arg(long, value_name = "MIB")]
    pub output_mb: Option<u64>,
    /// strict: tolerance where the expected token is a float.
    #[arg(long, allow_negative_numbers = true)]
    pub float_tol: Option<f64>,
    /// Worker processes (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Refuse to run unless every sandbox layer is in force.
    #[arg(long)]
    #[serde(default)]
    pub require_sandbox: bool,
    /// Python interpreter that runs the programs (default: python3 on PATH; needs numpy).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

/// Judge choice on the command line.
#[derive(ValueEnum, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeArg {
    /// apps for input/output tests, strict for assertion tests.
    Auto,
    /// The APPS reference harness's semantics.
    Apps,
    /// Real scripts, CPU limits, token comparison.
    Strict,
}

impl JudgeArgs {
    /// Fills unset fields from the config file's values.
    pub fn merge(&mut self, f: JudgeArgs) {
        self.judge = self.judge.or(f.judge);
        self.timeout = self.timeout.or(f.timeout);
        self.sample_timeout = self.sample_timeout.or(f.sample_timeout);
        self.calibrate = self.calibrate.or(f.calibrate);
        self.time_floor = self.time_floor.or(f.time_floor);
        self.no_rerun_timeouts |= f.no_rerun_timeouts;
        self.memory_mb = self.memory_mb.or(f.memory_mb);
        self.output_mb = self.output_mb.or(f.output_mb);
        self.float_tol = self.float_tol.or(f.float_tol);
        self.jobs = self.jobs.or(f.jobs);
        self.require_sandbox |= f.require_sandbox;
        self.python = self.python.take().or(f.python);
    }

    /// The judge choice (default auto).
    pub fn choice(&self) -> JudgeChoice {
        match self.judge.unwrap_or(JudgeArg::Auto) {
            JudgeArg::Auto => JudgeChoice::Auto,
            JudgeArg::Apps => JudgeChoice::Apps,
            JudgeArg::Strict => JudgeChoice::Strict,
        }
    }

    /// Checks the settings that are not limits (the pool's), so a typo fails before any work.
    pub fn validate(&self) -> Result<()> {
        if self.jobs == Some(0) {
            bail!("--jobs must be at least 1");
        }
        if let Some(m) = self.memory_mb {
            positive("--memory-mb", m as f64)?;
        }
        self.limits()?;
        self.calibration()?;
        Ok(())
    }

    /// The limits, checked for sense.
    pub fn limits(&self) -> Result<JudgeLimits> {
        let mut l = JudgeLimits::default();
        if let Some(t) = self.timeout {
            positive("--timeout", t)?;
            l.test_timeout_s = t;
        }
        if let Some(t) = self.sample_timeout {
            positive("--sample-timeout", t)?;
            l.sample_timeout_s = t;
        }
        if let Some(m) = self.output_mb {
            positive("--output-mb", m as f64)?;
            l.output_bytes = m << 20;
        }
        if let Some(t) = self.float_tol {
            if !(t >= 0.0 && t.is_finite()) {
                bail!("--float-tol must be a finite number ≥ 0, got {t}");
            }
            l.float_tol = t;
        }
        Ok(l)
    }

    /// Calibration settings, if asked for.
    pub fn calibration(&self) -> Result<Option<Calibration>> {
        match self.calibrate {
            None => {
                if self.time_floor.is_some() {
                    bail!("--time-floor only makes sense with --calibrate FACTOR");
                }
                Ok(None)
            }
            Some(factor) => {
                positive("--calibrate", factor)?;
                let floor_s = self.time_floor.unwrap_or(1.0);
                positive("--time-floor", floor_s)?;
                Ok(Some(Calibration { factor, floor_s }))
            }
        }
    }

    /// Starts the worker pool, warning loudly (once) about missing sandbox layers.
    pub fn pool(&self) -> Result<Pool> {
        let python = PythonInfo::discover(self.python.as_deref())?;
        let mut config = PoolConfig::new(python);
        self.validate()?;
        if let Some(j) = self.jobs {
            config.jobs = j;
        }
        if let Some(m) = self.memory_mb {
            config.limits.memory_bytes = m << 20;
        }
        config.require_sandbox = self.require_sandbox;
        let pool = Pool::new(config).context("starting the sandboxed Python workers")?;
        let missing = pool.layers().missing();
        if !missing.is_empty() {
            eprintln!(
                "WARNING: sandbox layers NOT in force on this machine: {}. Untrusted code runs \
                 with weaker isolation; use --require-sandbox to refuse.",
                missing.join(", ")
            );
        }
        Ok(pool)
    }
}

fn positive(flag: &str, v: f64) -> Result<()> {
    if !(v > 0.0 && v.is_finite()) {
        bail!("{flag} must be a positive number, got {v}");
    }
    Ok(())
}

/// Reads a TOML config file into `T`, naming the file in every error.
pub fn read_config<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Where named models live.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelsDirArgs {
    /// Models folder (default: $CODEPLAN_MODELS, else ~/.cache/codeplan/models).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

impl ModelsDirArgs {
    /// The models root this run uses.
    pub fn root(&self) -> Result<PathBuf> {
        Ok(codeplan_model::store::models_root(
            self.models_dir.as_deref(),
        )?)
    }
}

/// Parses `--shard I/N`, naming the flag and the value in the error.
pub fn parse_shard(arg: Option<&str>) -> Result<Option<Shard>> {
    arg.map(|s| s.parse::<Shard>().map_err(|e| anyhow!("--shard {s}: {e}")))
        .transpose()
}

/// The shard side of a run: which part of the selection it does, and the record it leaves
/// when it finishes (so `codeplan merge` can check it has every part).
pub struct ShardPart {
    shard: Option<Shard>,
    record: PathBuf,
    selection: Vec<Problem>,
}

impl ShardPart {
    /// Returns this shard's problems (all of them without a shard); unless the run only
    /// looks (`writes` false: a dry run), removes the record an earlier run left at `record`,
    /// as the outputs are about to change.
    pub fn begin(
        shard: Option<Shard>,
        record: PathBuf,
        selection: Vec<Problem>,
        writes: bool,
    ) -> Result<(ShardPart, Vec<Problem>)> {
        if writes {
            ShardRecord::remove(&record)?;
        }
        let mine = match shard {
            Some(s) => s.apply(selection.clone()),
            None => selection.clone(),
        };
        if let Some(s) = shard {
            eprintln!(
                "shard {s}: {} of {} selected problem(s)",
                mine.len(),
                selection.len()
            );
        }
        Ok((
            ShardPart {
                shard,
                record,
                selection,
            },
            mine,
        ))
    }

    /// The whole selection (before sharding).
    pub fn selection(&self) -> &[Problem] {
        &self.selection
    }

    /// Records a finished shard: its kind, index and the settings that decide its outputs
    /// (`settings` is only built for a shard). Unsharded runs record nothing.
    pub fn finish(&self, kind: &str, settings: impl FnOnce() -> Result<Value>) -> Result<()> {
        if let Some(shard) = self.shard {
            ShardRecord::new(kind, shard, &self.selection, settings()?).write(&self.record)?;
        }
        Ok(())
    }
}

/// sha256 of each `--data` input, so shards made from different files do not merge.
pub fn data_hashes(data: &DataArgs) -> Result<Vec<String>> {
    data.data
        .iter()
        .map(|p| Ok(codeplan_train::data::sha256_path(p)?))
        .collect()
}
