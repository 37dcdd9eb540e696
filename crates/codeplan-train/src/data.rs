//! From the run's settings to tokenised training and validation examples.

use std::path::Path;
use std::sync::Arc;

use codeplan_data::prompt::Task;
use codeplan_data::{load_problems, LoadOptions, Problem, Selection};
use codeplan_model::chat::ChatTemplate;
use codeplan_model::tokenizer::Tokenizer;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::examples::{check_plans, load_plans, parse_task, Dropped, Example, ExampleBuilder};

/// Everything a run trains and validates on.
pub struct Prepared {
    /// Training examples.
    pub train: Arc<Vec<Example>>,
    /// Validation examples (from held-out problems).
    pub val: Arc<Vec<Example>>,
    /// Examples left out, with reasons.
    pub dropped: Vec<Dropped>,
    /// Problems read, training and held out.
    pub problems: (usize, usize),
    /// The held-out problems (validation loss, and sampling during training).
    pub val_problems: Vec<Problem>,
    /// The student's tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template.
    pub template: Option<ChatTemplate>,
}

/// FNV-1a of a problem id mixed with the seed: which side of the split a problem falls on.
fn split_hash(id: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV alone leaves short ids' high bits poorly mixed.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether a problem is held out for validation.
pub fn is_validation(id: &str, seed: u64, fraction: f64) -> bool {
    fraction > 0.0 && (split_hash(id, seed) as f64 / u64::MAX as f64) < fraction
}

/// The tasks of a config, parsed.
pub fn tasks(config: &TrainConfig) -> Result<Vec<Task>> {
    config.tasks.iter().map(|t| parse_task(t)).collect()
}

/// Reads the data, plans and tokenizer, and builds the examples; every problem with the input
/// is reported before any weights are loaded.
pub fn prepare(config: &TrainConfig) -> Result<Prepared> {
    config.validate()?;
    let mut problems: Vec<Problem> = Vec::new();
    for path in &config.data {
        problems.extend(load_problems(path, &LoadOptions::default())?.problems);
    }
    let selection = Selection {
        ids: config.ids.clone(),
        difficulties: config.difficulty.clone(),
        limit: config.limit,
    };
    let problems = selection.apply(problems)?;
    if problems.is_empty() {
        return Err(TrainError::Input(
            "the training data holds no problems".into(),
        ));
    }
    let tasks = tasks(config)?;
    let plans = match &config.plans {
        Some(path) if tasks.contains(&Task::Plan) => {
            let plans = load_plans(path)?;
            if plans.is_empty() {
                return Err(TrainError::Input(format!(
                    "{}: holds no plans",
                    path.display()
                )));
            }
            check_plans(&plans, &problems, path)?;
            plans
        }
        _ => Vec::new(),
    };
    let (tokenizer, template) = codeplan_model::load_text_side(&config.model)?;
    let (val_problems, train_problems): (Vec<Problem>, Vec<Problem>) = problems
        .into_iter()
        .partition(|p| is_validation(&p.id, config.seed, config.val_fraction));
    let builder = ExampleBuilder {
        tokenizer: &tokenizer,
        template: template.as_ref(),
        style: config.prompt,
        max_len: config.max_len,
    };
    let train = builder.build(&train_problems, &plans, &tasks)?;
    let val = builder.build(&val_problems, &plans, &tasks)?;
    if train.examples.is_empty() {
        return Err(TrainError::Input(format!(
            "no training examples: {} problems, but none has a reference solution{} that fits \
             --max-len {}",
            train_problems.len(),
            if tasks.contains(&Task::Plan) {
                " or plan"
            } else {
                ""
            },
            config.max_len
        )));
    }
    for task in &tasks {
        if !train.examples.iter().any(|e| e.task == *task) {
            return Err(TrainError::Input(format!(
                "task `{}` was asked for but has no training examples{}",
                crate::examples::task_name(*task),
                match task {
                    Task::Code => " (no problem has a reference solution)",
                    Task::Plan => " (no plan matches a training problem)",
                }
            )));
        }
    }
    let mut dropped = train.dropped;
    dropped.extend(val.dropped);
    Ok(Prepared {
        train: Arc::new(train.examples),
        val: Arc::new(val.examples),
        dropped,
        problems: (train_problems.len(), val_problems.len()),
        val_problems,
        tokenizer,
        template,
    })
}

/// Bytes of memory available to new allocations (Linux `MemAvailable`), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string(Path::new("/proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// SHA-256 of a file, or of a folder's files (each file's relative path and hash, sorted),
/// as lowercase hex: what `run.json` records for the data, plans and model of a run.
pub fn sha256_path(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if path.is_dir() {
        let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| TrainError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let mut all = Sha256::new();
        for entry in entries {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            all.update(name.as_bytes());
            all.update(sha256_path(&entry)?.as_bytes());
        }
        return Ok(hex(&all.finalize()));
    }
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
