//! What a finished stage leaves behind (`stage.json`), and the machine a run ran on.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{Result, RunError};
use crate::plan::Stage;

/// The record a stage writes when — and only when — it has finished.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRecord {
    /// `distill`, `train`, `generate` or `eval`.
    pub kind: String,
    /// The stage's key.
    pub key: String,
    /// What the key was computed from.
    pub inputs: Json,
    /// The variants that used it when it ran.
    pub variants: Vec<String>,
    /// The command that reruns it by hand.
    pub command: String,
    /// codeplan's version.
    pub codeplan_version: String,
    /// When it started and finished (RFC 3339, UTC).
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// Wall-clock seconds of the last (resumed) attempt.
    pub wall_seconds: f64,
}

/// Where a stage stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Finished earlier: its outputs are reused.
    Cached,
    /// Started earlier and not finished: it resumes.
    Partial,
    /// Not started.
    Pending,
}

/// The record file of a stage folder.
pub fn record_path(dir: &Path) -> PathBuf {
    dir.join("stage.json")
}

/// Reads a stage's record, if it finished.
pub fn read_record(dir: &Path) -> Result<Option<StageRecord>> {
    let path = record_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RunError::Record {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RunError::io(&path, e)),
    }
}

/// Where a stage stands, from its folder.
pub fn status(stage: &Stage) -> Result<StageStatus> {
    match read_record(&stage.dir)? {
        Some(r) if r.key == stage.key => Ok(StageStatus::Cached),
        _ if stage.dir.exists() => Ok(StageStatus::Partial),
        _ => Ok(StageStatus::Pending),
    }
}

/// Writes bytes to `path` through a temporary file and a rename, synced, so a crash leaves
/// either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| RunError::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| RunError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| RunError::io(&tmp, e))?;
    f.sync_all().map_err(|e| RunError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RunError::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Marks a stage finished.
pub fn write_record(stage: &Stage, record: &StageRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
    write_atomic(&record_path(&stage.dir), &bytes)
}

/// The machine a run ran on, for the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// Physical memory, GiB.
    pub memory_gib: f64,
    /// Operating system.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads what Linux says about this machine (fields it cannot read say `unknown`).
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once([':', '=']))
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        };
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next().map(str::to_owned))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os: field(&read("/etc/os-release"), "PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }
}
