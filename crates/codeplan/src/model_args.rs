//! The `--model` argument shared by `generate` and `serve`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;

use codeplan_model::model::Model;
use codeplan_model::store::{models_root, resolve_model};
use codeplan_model::{Placement, Precision};

/// Which model to load.
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelArgs {
    /// A fetched model's name (see `codeplan models list`), a .gguf file, or a Hugging Face
    /// folder (config.json + safetensors + tokenizer.json).
    #[arg(long, value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// Where fetched models live [default: $CODEPLAN_MODELS, else ~/.cache/codeplan/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Dequantise GGUF weights to f32 (slower; the reference path for checks).
    #[arg(long)]
    #[serde(default)]
    pub f32: bool,
    /// Where to run the model: `cpu` (codeplan's kernels), `cuda` or `cuda:N` (a GPU, with
    /// candle's kernels; needs a build with `--features cuda`) [default: cpu].
    #[arg(long, value_name = "cpu|cuda[:N]")]
    pub device: Option<String>,
}

impl ModelArgs {
    /// Fills unset fields from the config file's values.
    pub fn merge(&mut self, file: ModelArgs) {
        self.model = self.model.take().or(file.model);
        self.models_dir = self.models_dir.take().or(file.models_dir);
        self.f32 |= file.f32;
        self.device = self.device.take().or(file.device);
    }

    /// Where the model runs, from `--device`.
    pub fn placement(&self) -> Result<Placement> {
        let spec = self.device.as_deref().unwrap_or("cpu");
        Placement::parse(spec).with_context(|| format!("--device {spec}"))
    }

    /// Resolves and loads the model.
    pub fn load(&self) -> Result<Model> {
        let Some(spec) = self.model.as_deref() else {
            anyhow::bail!(
                "no model given: pass --model NAME|PATH (e.g. --model smollm2-135m after `codeplan models fetch smollm2-135m`)"
            );
        };
        let placement = self.placement()?;
        let root = models_root(self.models_dir.as_deref())?;
        let location = resolve_model(spec, &root)?;
        let precision = if self.f32 {
            Precision::F32
        } else {
            Precision::Native
        };
        let name = std::path::Path::new(spec)
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| spec.contains(['/', '\\']))
            .unwrap_or(spec)
            .to_owned();
        Model::load_on(&name, location.path(), precision, &placement).with_context(|| {
            format!(
                "loading model {spec} from {} onto {}",
                location.path().display(),
                placement.describe()
            )
        })
    }
}
