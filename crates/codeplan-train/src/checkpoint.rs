//! Checkpoints: trained tensors, optimiser moments and the step, written to a temporary folder
//! that is renamed into place only once complete, so a crash never leaves a half checkpoint
//! that `--resume` would pick up.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::AdamW;

const TRAINED: &str = "trained.safetensors";
const MOMENTS: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Updates completed.
    pub step: u64,
    /// Hash of the settings that shape the run (a resume under other settings is refused).
    pub config_hash: String,
}

/// The folder of the checkpoint after `step` updates.
pub fn checkpoint_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, path)?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(dir, e))
}

/// Writes the checkpoint after `opt.step` updates under `root` and keeps the newest `keep`.
pub fn save(root: &Path, opt: &AdamW, config_hash: &str, keep: usize) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, e))?;
    let final_dir = checkpoint_dir(root, opt.step);
    let tmp = root.join(format!(".tmp-step-{:08}", opt.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let dev = Device::Cpu;
    let trained: Vec<(String, Tensor)> = opt
        .slots
        .iter()
        .map(|s| (s.name.clone(), s.var.as_tensor().detach()))
        .collect();
    write_safetensors(&tmp.join(TRAINED), &trained)?;
    let mut moments = Vec::with_capacity(2 * opt.slots.len());
    for s in &opt.slots {
        moments.push((
            format!("{}.exp_avg", s.name),
            Tensor::from_slice(&s.m, s.m.len(), &dev)?,
        ));
        moments.push((
            format!("{}.exp_avg_sq", s.name),
            Tensor::from_slice(&s.v, s.v.len(), &dev)?,
        ));
    }
    write_safetensors(&tmp.join(MOMENTS), &moments)?;
    let state = CheckpointState {
        step: opt.step,
        config_hash: config_hash.to_owned(),
    };
    let path = tmp.join(STATE);
    let mut f = File::create(&path).map_err(|e| TrainError::io(&path, e))?;
    f.write_all(
        serde_json::to_string_pretty(&state)
            .expect("serialisable")
            .as_bytes(),
    )
    .and_then(|_| f.sync_all())
    .map_err(|e| TrainError::io(&path, e))?;
    sync_dir(&tmp)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
    sync_dir(root)?;
    let all = list(root)?;
    if all.len() > keep {
        for (_, old) in &all[..all.len() - keep] {
            std::fs::remove_dir_all(old).map_err(|e| TrainError::io(old, e))?;
        }
    }
    Ok(final_dir)
}

/// Complete checkpoints under `root`, oldest first (leftover temporary folders are ignored).
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| TrainError::io(root, e))? {
        let entry = entry.map_err(|e| TrainError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE).exists() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Restores tensors, moments and step from a checkpoint folder into `opt`.
pub fn load(dir: &Path, opt: &mut AdamW, config_hash: &str) -> Result<CheckpointState> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| {
        TrainError::Input(format!("{}: not a checkpoint state: {e}", path.display()))
    })?;
    if state.config_hash != config_hash {
        return Err(TrainError::Input(format!(
            "{}: this checkpoint was written with different training settings; resume with the \
             settings of that run (see run.json) or start a new --out folder",
            dir.display()
        )));
    }
    let dev = Device::Cpu;
    let trained = candle_core::safetensors::load(dir.join(TRAINED), &dev)?;
    let moments = candle_core::safetensors::load(dir.join(MOMENTS), &dev)?;
    for s in &mut opt.slots {
        let missing = |what: &str| {
            TrainError::Input(format!("{}: has no {what} for {}", dir.display(), s.name))
        };
        let t = trained.get(&s.name).ok_or_else(|| missing("tensor"))?;
        if t.dims() != s.var.dims() {
            return Err(TrainError::Input(format!(
                "{}: {} has shape {:?}, the model expects {:?}",
                dir.display(),
                s.name,
                t.dims(),
                s.var.dims()
            )));
        }
        s.var.set(t)?;
        s.m = moments
            .get(&format!("{}.exp_avg", s.name))
            .ok_or_else(|| missing("first moment"))?
            .to_vec1()?;
        s.v = moments
            .get(&format!("{}.exp_avg_sq", s.name))
            .ok_or_else(|| missing("second moment"))?
            .to_vec1()?;
    }
    opt.step = state.step;
    Ok(state)
}
