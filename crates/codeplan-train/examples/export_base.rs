//! Writes a model's untrained weights as a Hugging Face folder (and GGUF f16 from a GGUF), the
//! base that a PEFT adapter from `codeplan train` applies to:
//!
//! `cargo run -p codeplan-train --example export_base -- MODEL.gguf OUT_DIR`

use std::path::PathBuf;

use codeplan_train::base::BaseWeights;
use codeplan_train::export::{write_exports, ExportFormat};
use codeplan_train::model::{Mode, TrainableModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, out] = args.as_slice() else {
        return Err("usage: export_base MODEL(.gguf|HF folder) OUT_DIR".into());
    };
    let source = PathBuf::from(model);
    let base = BaseWeights::load(&source)?;
    let model = TrainableModel::new(&base, Mode::Full, 0)?;
    drop(base);
    let mut formats = vec![ExportFormat::Hf];
    if source.is_file() {
        formats.push(ExportFormat::GgufF16);
    }
    let report = write_exports(&model, &source, model_name(&source), &formats, out.as_ref())?;
    for (format, path) in report.written {
        println!("{}: {}", format.name(), path.display());
    }
    Ok(())
}

fn model_name(path: &std::path::Path) -> &str {
    path.to_str().unwrap_or("base")
}
