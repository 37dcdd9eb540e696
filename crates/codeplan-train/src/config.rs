//! Every setting of a training run, as the TOML file spells it (the CLI's flags override it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::batches::Batching;
use crate::error::{Result, TrainError};
use crate::examples::PromptStyle;
use crate::export::ExportFormat;
use crate::lora::{LoraSpec, LoraTarget};
use crate::model::Mode;
use crate::optim::{AdamWConfig, LrSchedule};

/// Full fine-tuning or LoRA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeKind {
    /// Base frozen, adapters trained.
    #[default]
    Lora,
    /// Every weight trained.
    Full,
}

/// Loss weight of each task.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskWeights {
    /// Weight of the code task.
    pub code: f32,
    /// Weight of the plan task.
    pub plan: f32,
}

impl Default for TaskWeights {
    fn default() -> Self {
        TaskWeights {
            code: 1.0,
            plan: 1.0,
        }
    }
}

/// A training run, fully resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The student: a GGUF file or Hugging Face folder (the CLI resolves model names).
    pub model: PathBuf,
    /// Problem files or folders (APPS, HumanEval, MBPP); their reference solutions are the code
    /// task's targets.
    pub data: Vec<PathBuf>,
    /// Only these problem ids (each must exist in `data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Only these difficulty labels (`introductory`, `interview`, `competition`, `all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<Vec<String>>,
    /// At most this many problems (the first ones, in file order), after `ids`/`difficulty`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// A plans file (JSONL `{"problem_id", "plan"}`), needed for the plan task.
    pub plans: Option<PathBuf>,
    /// Tasks to train: `code`, `plan`.
    pub tasks: Vec<String>,
    /// Loss weight per task.
    pub weights: TaskWeights,
    /// Prompt format.
    pub prompt: PromptStyle,
    /// Train the plan task through its own copy of the output head (the paper's ablation).
    pub plan_head: bool,
    /// Full or LoRA.
    pub mode: ModeKind,
    /// LoRA rank.
    pub lora_rank: usize,
    /// LoRA alpha (scale = alpha / rank).
    pub lora_alpha: f32,
    /// LoRA dropout.
    pub lora_dropout: f32,
    /// LoRA target modules (`q_proj`, …, `down_proj`).
    pub lora_targets: Vec<LoraTarget>,
    /// Longest example in tokens; also the row length when packing.
    pub max_len: usize,
    /// Rows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per update.
    pub grad_accum: usize,
    /// How examples share rows.
    pub batching: Batching,
    /// Updates to run.
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Linear warm-up updates.
    pub warmup_steps: u64,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub clip_grad_norm: f64,
    /// Seed of everything random (adapter init, data order, dropout).
    pub seed: u64,
    /// Share of problems held out for validation (by problem, never split across sets).
    pub val_fraction: f64,
    /// Validation loss every N updates (0 = only at the end).
    pub eval_every: u64,
    /// At most this many validation micro-batches per evaluation.
    pub val_batches: usize,
    /// Sample and judge held-out problems every N updates (0 = never), logging `eval/pass@1`.
    pub eval_pass_every: u64,
    /// Held-out problems sampled for that evaluation.
    pub eval_problems: usize,
    /// New tokens per sample in that evaluation.
    pub eval_max_new_tokens: usize,
    /// Checkpoint every N updates (and at the end).
    pub save_every: u64,
    /// Checkpoints kept (the newest ones).
    pub keep_checkpoints: usize,
    /// Output folder.
    pub out: PathBuf,
    /// What to write into `out` once training ends (`peft` is skipped in full mode).
    pub export: Vec<ExportFormat>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: PathBuf::new(),
            data: Vec::new(),
            ids: None,
            difficulty: None,
            limit: None,
            plans: None,
            tasks: vec!["code".into(), "plan".into()],
            weights: TaskWeights::default(),
            prompt: PromptStyle::Codeplan,
            plan_head: false,
            mode: ModeKind::Lora,
            lora_rank: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.05,
            lora_targets: LoraTarget::ALL.to_vec(),
            max_len: 1024,
            batch_size: 1,
            grad_accum: 1,
            batching: Batching::Pack,
            max_steps: 100,
            lr: 2e-4,
            schedule: LrSchedule::Cosine,
            warmup_steps: 10,
            adamw: AdamWConfig::default(),
            clip_grad_norm: 1.0,
            seed: 0,
            val_fraction: 0.05,
            eval_every: 50,
            val_batches: 8,
            eval_pass_every: 0,
            eval_problems: 10,
            eval_max_new_tokens: 256,
            save_every: 50,
            keep_checkpoints: 2,
            out: PathBuf::from("runs/train"),
            export: crate::export::default_formats(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are errors that name the key, line and file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::Input(format!("{}: {e}", path.display())))
    }

    /// The training mode with its LoRA settings.
    pub fn model_mode(&self) -> Mode {
        match self.mode {
            ModeKind::Full => Mode::Full,
            ModeKind::Lora => Mode::Lora(LoraSpec {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                targets: self.lora_targets.clone(),
            }),
        }
    }

    /// Checks everything that can be checked before loading anything; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(TrainError::Input(what));
        if self.model.as_os_str().is_empty() {
            return bad("no model given (--model or `model` in the config file)".into());
        }
        if self.data.is_empty() {
            return bad("no training data given (--data or `data` in the config file)".into());
        }
        if self.tasks.is_empty() {
            return bad("no tasks given (--tasks code,plan)".into());
        }
        for t in &self.tasks {
            crate::examples::parse_task(t)?;
        }
        if self.tasks.iter().any(|t| t == "plan") && self.plans.is_none() {
            return bad(
                "the plan task needs a plans file (--plans plans.jsonl), or train --tasks code"
                    .into(),
            );
        }
        for (name, w) in [("code", self.weights.code), ("plan", self.weights.plan)] {
            if !(w.is_finite() && w >= 0.0) {
                return bad(format!(
                    "weight of task {name} must be a number ≥ 0, got {w}"
                ));
            }
        }
        if self.max_len < 16 {
            return bad(format!(
                "max_len must be at least 16 tokens, got {}",
                self.max_len
            ));
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.max_steps == 0 {
            return bad("batch_size, grad_accum and max_steps must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!(
                "val_fraction must be in [0, 1), got {}",
                self.val_fraction
            ));
        }
        if self.mode == ModeKind::Lora {
            if self.lora_rank == 0 {
                return bad("lora_rank must be at least 1".into());
            }
            if self.lora_targets.is_empty() {
                return bad("lora_targets is empty".into());
            }
            if !(0.0..1.0).contains(&self.lora_dropout) {
                return bad(format!(
                    "lora_dropout must be in [0, 1), got {}",
                    self.lora_dropout
                ));
            }
        }
        let a = &self.adamw;
        if !(0.0..1.0).contains(&a.beta1) || !(0.0..1.0).contains(&a.beta2) || a.eps <= 0.0 {
            return bad("adamw: betas must be in [0, 1) and eps > 0".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1".into());
        }
        // Refused now rather than after a training run whose GGUF export would fail.
        let gguf: Vec<&str> = self
            .export
            .iter()
            .filter(|f| f.is_gguf())
            .map(|f| f.name())
            .collect();
        if !gguf.is_empty() && self.model.is_dir() {
            return bad(format!(
                "export {}: GGUF export needs a GGUF source model, and {} is a Hugging Face \
                 folder (export hf instead)",
                gguf.join(", "),
                self.model.display()
            ));
        }
        Ok(())
    }
}
