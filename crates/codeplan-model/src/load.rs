//! Opening a model file or folder and building its decoder.

use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::decoder::Decoder;
use crate::device::Placement;
use crate::error::{ModelError, Result};
use crate::weights::{Precision, WeightSource};

/// Loads the decoder of a GGUF file for the CPU; also returns the file's header (tokenizer,
/// chat template).
pub fn load_gguf(path: &Path, precision: Precision) -> Result<(Decoder, gguf_file::Content)> {
    load_gguf_on(path, precision, &Placement::Cpu)
}

/// [`load_gguf`] where `placement` says.
pub fn load_gguf_on(
    path: &Path,
    precision: Precision,
    placement: &Placement,
) -> Result<(Decoder, gguf_file::Content)> {
    let mut source = WeightSource::open_gguf(path, precision)?;
    let content = source.gguf_content().expect("a GGUF source");
    let config = crate::arch::config_from_gguf(content, path)?;
    let decoder = Decoder::load_on(&mut source, config, placement)?;
    Ok((decoder, source.into_gguf_content().expect("a GGUF source")))
}

/// Reads only the text side of a model — tokenizer and chat template — from a GGUF header or a
/// Hugging Face folder, without loading any weights.
pub fn load_text_side(
    path: &Path,
) -> Result<(
    crate::tokenizer::Tokenizer,
    Option<crate::chat::ChatTemplate>,
)> {
    if path.is_dir() {
        let tokenizer = crate::tokenizer::Tokenizer::from_hf_dir(path)?;
        let template = crate::chat::ChatTemplate::from_hf_dir(path)?;
        return Ok((tokenizer, template));
    }
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    let content = gguf_file::Content::read(&mut std::io::BufReader::new(file)).map_err(|e| {
        ModelError::Tensor {
            file: path.to_owned(),
            name: "(header)".into(),
            problem: format!("is not a readable GGUF file: {e}"),
        }
    })?;
    let tokenizer = crate::tokenizer::Tokenizer::from_gguf(&content)?;
    let template = crate::chat::ChatTemplate::from_gguf(&content)?;
    Ok((tokenizer, template))
}

/// Loads the decoder of a Hugging Face folder (`config.json` + safetensors), in f32, for the
/// CPU.
pub fn load_hf_dir(dir: &Path) -> Result<Decoder> {
    load_hf_dir_on(dir, &Placement::Cpu)
}

/// [`load_hf_dir`] where `placement` says.
pub fn load_hf_dir_on(dir: &Path, placement: &Placement) -> Result<Decoder> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
        path: config_path.clone(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::Metadata {
            file: config_path.clone(),
            key: "(file)".into(),
            problem: format!("is not valid JSON: {e}"),
        })?;
    let config = crate::arch::config_from_hf(&json, &config_path)?;
    let mut source = WeightSource::open_safetensors(dir)?;
    Decoder::load_on(&mut source, config, placement)
}
