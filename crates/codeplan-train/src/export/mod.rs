//! Exporting a trained model: the LoRA adapter as PEFT writes it ([`peft`]), the merged model as
//! a Hugging Face folder ([`hf`]) and as GGUF in f16 or q8_0 ([`gguf`]).
//!
//! Every export is written under a temporary name next to its destination and renamed into place
//! once complete, so a crash never leaves a half-written model where a loader would find it.

pub mod gguf;
pub mod hf;
pub mod peft;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::{Mode, TrainableModel, Weight};

/// What to write at the end of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExportFormat {
    /// The LoRA adapter in PEFT's layout (`adapter/`); nothing in full mode.
    #[serde(rename = "peft")]
    Peft,
    /// The merged model as a Hugging Face folder (`model/`).
    #[serde(rename = "hf")]
    Hf,
    /// The merged model as GGUF with f16 weights (`model-f16.gguf`).
    #[serde(rename = "gguf_f16")]
    GgufF16,
    /// The merged model as GGUF with q8_0 weights (`model-q8_0.gguf`).
    #[serde(rename = "gguf_q8_0")]
    GgufQ8_0,
}

impl ExportFormat {
    /// Every format, in the order they are written.
    pub const ALL: [ExportFormat; 4] = [
        ExportFormat::Peft,
        ExportFormat::Hf,
        ExportFormat::GgufF16,
        ExportFormat::GgufQ8_0,
    ];

    /// The name the CLI and config file use (`gguf_q8_0`; the CLI also accepts `gguf-q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Peft => "peft",
            ExportFormat::Hf => "hf",
            ExportFormat::GgufF16 => "gguf_f16",
            ExportFormat::GgufQ8_0 => "gguf_q8_0",
        }
    }

    /// Where the format goes under the output folder.
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Peft => "adapter",
            ExportFormat::Hf => "model",
            ExportFormat::GgufF16 => "model-f16.gguf",
            ExportFormat::GgufQ8_0 => "model-q8_0.gguf",
        }
    }

    /// Whether the format is a GGUF file (these need a GGUF source model).
    pub fn is_gguf(self) -> bool {
        matches!(self, ExportFormat::GgufF16 | ExportFormat::GgufQ8_0)
    }
}

impl FromStr for ExportFormat {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().replace('-', "_");
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == wanted)
            .ok_or_else(|| {
                TrainError::Input(format!(
                    "unknown export format `{s}` (known: peft, hf, gguf-f16, gguf-q8_0)"
                ))
            })
    }
}

/// The default exports: the adapter (LoRA mode) and the merged Hugging Face folder.
pub fn default_formats() -> Vec<ExportFormat> {
    vec![ExportFormat::Peft, ExportFormat::Hf]
}

/// Every weight of the model under its Hugging Face name, with LoRA updates merged into the
/// frozen base (`W + B·A·α/r`) and trained values as they are in full mode. A tied head has no
/// `lm_head.weight`. Full-mode tensors share storage with the trained variables: write them out
/// before the next optimiser update changes them.
pub fn merged_weights(model: &TrainableModel) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    let value = |w: &Weight| w.tensor().detach();
    out.insert("model.embed_tokens.weight".to_owned(), value(&model.embed));
    for (i, l) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        out.insert(format!("{p}.input_layernorm.weight"), value(&l.attn_norm));
        out.insert(
            format!("{p}.post_attention_layernorm.weight"),
            value(&l.ffn_norm),
        );
        for proj in l.projections() {
            let mut w = value(&proj.weight);
            if let Some(a) = &proj.adapter {
                w = (w + a.delta()?.detach())?;
            }
            out.insert(format!("{}.weight", proj.name), w);
            if let Some(b) = &proj.bias {
                out.insert(format!("{}.bias", proj.name), value(b));
            }
        }
    }
    out.insert("model.norm.weight".to_owned(), value(&model.norm));
    if let Some(h) = &model.head {
        out.insert("lm_head.weight".to_owned(), value(h));
    }
    Ok(out)
}

/// What [`write_exports`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportReport {
    /// Each written format and its path.
    pub written: Vec<(ExportFormat, PathBuf)>,
    /// Each requested format that was left out, and why.
    pub skipped: Vec<(ExportFormat, String)>,
}

/// Writes the requested exports of a trained model under `out` (`adapter/`, `model/`,
/// `model-f16.gguf`, `model-q8_0.gguf`), each atomically. `source` is the base model's file or
/// folder (tokenizer, chat template, GGUF metadata come from it); `base_name` is recorded as the
/// adapter's `base_model_name_or_path`.
pub fn write_exports(
    model: &TrainableModel,
    source: &Path,
    base_name: &str,
    formats: &[ExportFormat],
    out: &Path,
) -> Result<ExportReport> {
    let mut formats = formats.to_vec();
    formats.sort();
    formats.dedup();
    let mut report = ExportReport::default();
    if formats.iter().any(|f| f.is_gguf()) {
        // Fail before writing anything rather than after a long HF export.
        gguf::check_source(source)?;
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    for format in formats {
        let dest = out.join(format.file_name());
        match format {
            ExportFormat::Peft => {
                if matches!(model.mode(), Mode::Full) {
                    report.skipped.push((
                        format,
                        "full fine-tuning has no adapter (the merged model is the result)".into(),
                    ));
                    continue;
                }
                replace_dir(&dest, |tmp| peft::write_adapter(model, base_name, tmp))?;
            }
            ExportFormat::Hf => replace_dir(&dest, |tmp| hf::write_folder(model, source, tmp))?,
            ExportFormat::GgufF16 => replace_file(&dest, |tmp| {
                gguf::write_gguf(model, source, tmp, gguf::GgufType::F16)
            })?,
            ExportFormat::GgufQ8_0 => replace_file(&dest, |tmp| {
                gguf::write_gguf(model, source, tmp, gguf::GgufType::Q8_0)
            })?,
        }
        report.written.push((format, dest));
    }
    Ok(report)
}

/// `dest` with its file name prefixed, in the same folder (so that renaming is atomic).
fn sibling(dest: &Path, prefix: &str) -> Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        TrainError::Input(format!("{}: not a file or folder name", dest.display()))
    })?;
    let mut tmp = std::ffi::OsString::from(prefix);
    tmp.push(name);
    Ok(dest.with_file_name(tmp))
}

/// Flushes a file or folder to disk, so that the rename that follows publishes complete data.
pub(crate) fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

/// Writes a folder with `write` under a temporary name, then puts it in place of `dest` (an
/// older `dest` is moved aside first and removed after: a folder cannot be renamed over a
/// non-empty one).
pub fn replace_dir(dest: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = sibling(dest, ".tmp-")?;
    let old = sibling(dest, ".old-")?;
    for stale in [&tmp, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(|e| TrainError::io(stale, e))?;
        }
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    for entry in std::fs::read_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))? {
        sync(&entry.map_err(|e| TrainError::io(&tmp, e))?.path())?;
    }
    sync(&tmp)?;
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(dest, &old).map_err(|e| TrainError::io(dest, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))?;
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
}

/// Writes a file with `write` under a temporary name, then renames it over `dest`.
pub fn replace_file(dest: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = sibling(dest, ".tmp-")?;
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync(&tmp)?;
    std::fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))
}

/// Writes pretty-printed JSON to `path`.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    std::fs::write(path, text + "\n").map_err(|e| TrainError::io(path, e))
}

/// Writes tensors as one safetensors file with transformers' `{"format": "pt"}` header.
pub(crate) fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut contiguous = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        contiguous.push((name.as_str(), t.contiguous()?));
    }
    let meta = std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(contiguous.iter().map(|(n, t)| (*n, t)), Some(meta), path)
        .map_err(|e| {
            TrainError::Input(format!(
                "{}: could not write safetensors: {e}",
                path.display()
            ))
        })
}
