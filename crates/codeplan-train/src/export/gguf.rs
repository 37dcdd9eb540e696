//! The merged model as a GGUF file in f16 or q8_0, for llama.cpp and codeplan's runtime.
//!
//! The source GGUF's metadata (architecture, hyperparameters, tokenizer, chat template,
//! `general.*`) is copied with `general.file_type` updated; tensors are written under
//! llama.cpp's names, matrices in the chosen type and norms/biases in f32, with the q/k rows of
//! `llama` models permuted back into llama.cpp's order for its interleaved RoPE.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use codeplan_model::weights::Role;
use codeplan_model::RopeStyle;

use crate::base::{permute_rows, roles};
use crate::error::{Result, TrainError};
use crate::model::TrainableModel;

/// The type of the exported matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufType {
    /// Half precision.
    F16,
    /// 8-bit blocks of 32 with one f16 scale (llama.cpp's q8_0).
    Q8_0,
}

impl GgufType {
    /// llama.cpp's `llama_ftype` for `general.file_type` (MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7).
    pub fn file_type(self) -> u32 {
        match self {
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

/// Checks that `source` is a GGUF file: GGUF export copies its metadata (tokenizer, chat
/// template, hyperparameters), which a Hugging Face folder does not have in GGUF form.
pub fn check_source(source: &Path) -> Result<()> {
    if source.is_dir() {
        return Err(TrainError::Input(format!(
            "{}: GGUF export needs a GGUF source model, and this is a Hugging Face folder; \
             export `hf` and convert it with llama.cpp's convert_hf_to_gguf.py, or train from \
             the model's GGUF",
            source.display()
        )));
    }
    read_header(source).map(|_| ())
}

fn read_header(source: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let file = File::open(source).map_err(|e| TrainError::io(source, e))?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| {
        TrainError::Input(format!(
            "{}: GGUF export needs a GGUF source model, and this is not a readable GGUF file: {e}",
            source.display()
        ))
    })?;
    Ok((content, reader))
}

/// The tensor for the file: matrices in `ty` (f16 where a row does not fill whole q8_0 blocks,
/// as llama.cpp does), vectors in f32.
fn to_qtensor(t: &Tensor, ty: GgufType) -> candle_core::Result<QTensor> {
    let dims = t.dims();
    let ggml = if dims.len() < 2 {
        GgmlDType::F32
    } else if !dims[dims.len() - 1].is_multiple_of(ty.ggml().block_size()) {
        GgmlDType::F16
    } else {
        ty.ggml()
    };
    QTensor::quantize(&t.contiguous()?, ggml)
}

/// The metadata to write: the source's, with `general.file_type` set for `ty` and the alignment
/// key dropped (candle writes the default 32-byte alignment).
fn metadata(content: &gguf_file::Content, ty: GgufType) -> BTreeMap<String, Value> {
    let mut meta: BTreeMap<String, Value> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert("general.file_type".into(), Value::U32(ty.file_type()));
    if ty == GgufType::Q8_0 {
        meta.insert("general.quantization_version".into(), Value::U32(2));
    }
    meta
}

/// Writes the merged model as a GGUF file at `path`; `source` is the GGUF the model was trained
/// from (an error names it when it is not a GGUF file or does not match the model's shape).
pub fn write_gguf(model: &TrainableModel, source: &Path, path: &Path, ty: GgufType) -> Result<()> {
    check_source(source)?;
    let (content, mut reader) = read_header(source)?;
    let mut source_config = codeplan_model::arch::config_from_gguf(&content, source)?;
    let permuted = source_config.rope_style == RopeStyle::Interleaved;
    let c = model.config();
    source_config.rope_style = c.rope_style;
    if &source_config != c {
        return Err(TrainError::Input(format!(
            "{}: this GGUF does not describe the trained model (its configuration is {source_config:?}, \
             the model's {c:?}); export from the GGUF the model was trained from",
            source.display()
        )));
    }
    let mut weights = super::merged_weights(model)?;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for role in roles(c.num_layers) {
        for suffix in ["weight", "bias"] {
            let Some(mut t) = weights.remove(&format!("{}.{suffix}", role.hf_name())) else {
                continue;
            };
            if permuted {
                match role {
                    Role::Q(_) => t = permute_rows(&t, c.num_heads)?,
                    Role::K(_) => t = permute_rows(&t, c.num_kv_heads)?,
                    _ => {}
                }
            }
            let name = format!("{}.{suffix}", role.gguf_name());
            tensors.push((name, to_qtensor(&t, ty)?));
        }
    }
    if let Some(left) = weights.keys().next() {
        return Err(TrainError::Input(format!(
            "{}: the model has a tensor `{left}` that has no GGUF name",
            path.display()
        )));
    }
    // Tensors the trainer does not model (e.g. llama 3's `rope_freqs`) go across unchanged.
    let written: HashSet<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let mut extra: Vec<&String> = content
        .tensor_infos
        .keys()
        .filter(|n| !written.contains(*n))
        .collect();
    extra.sort();
    for name in extra {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| {
                TrainError::Input(format!("{}: tensor `{name}`: {e}", source.display()))
            })?;
        tensors.push((name.clone(), q));
    }
    let meta = metadata(&content, ty);
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let file = File::create(path).map_err(|e| TrainError::io(path, e))?;
    let mut w = BufWriter::new(file);
    gguf_file::write(&mut w, &meta_refs, &tensor_refs)
        .map_err(|e| TrainError::Input(format!("{}: could not write GGUF: {e}", path.display())))?;
    w.flush().map_err(|e| TrainError::io(path, e))
}
