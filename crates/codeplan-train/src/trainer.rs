//! The training loop: micro-batches, gradient accumulation and clipping, AdamW, validation,
//! metrics, checkpoints and resuming.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use codeplan_data::prompt::Task;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::base::BaseWeights;
use crate::batches::{task_index, EpochPlan, MicroBatch, Schedule};
use crate::config::{ModeKind, TrainConfig};
use crate::data::Prepared;
use crate::error::{Result, TrainError};
use crate::examples::task_name;
use crate::metrics::MetricsLog;
use crate::model::{TokenBatch, TrainableModel};
use crate::ops::CrossEntropyOutput;
use crate::optim::{learning_rate, AdamW};

/// What one update measured.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMetrics {
    /// Updates completed (1-based).
    pub step: u64,
    /// The weighted loss that was minimised.
    pub loss: f64,
    /// Mean cross-entropy per task over its trained tokens (`code`, `plan`).
    pub task_loss: BTreeMap<String, f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (prompt and target, no padding) processed per second.
    pub tokens_per_s: f64,
    /// Seconds the update took.
    pub seconds: f64,
}

/// Progress reports from [`Trainer::run`] (the library never prints).
pub enum Event<'a> {
    /// Weights loaded, optimiser ready.
    Ready {
        /// Trained parameters.
        trainable: usize,
        /// Parameters of the base model.
        total: usize,
        /// The step training starts from (non-zero after `--resume`).
        start_step: u64,
    },
    /// An update finished.
    Step(&'a StepMetrics),
    /// Validation losses per task at a step.
    Validation {
        /// The step.
        step: u64,
        /// Mean cross-entropy per task.
        losses: &'a BTreeMap<String, f64>,
    },
    /// Evaluation metrics (e.g. `eval/pass@1`) at a step.
    Evaluation {
        /// The step.
        step: u64,
        /// The metrics.
        metrics: &'a BTreeMap<String, f64>,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Its step.
        step: u64,
        /// Its folder.
        path: &'a PathBuf,
    },
}

/// Samples and judges the model being trained at a step; returns metrics to log (names with a
/// `/`, e.g. `eval/pass@1`).
pub type Evaluator<'a> = dyn FnMut(&TrainableModel, u64) -> Result<BTreeMap<String, f64>> + 'a;

/// The settings that shape the numbers of a run (a resume must match them).
pub fn config_hash(config: &TrainConfig) -> String {
    let mut v = serde_json::to_value(config).expect("serialisable");
    if let Value::Object(map) = &mut v {
        for key in [
            "out",
            "eval_every",
            "save_every",
            "keep_checkpoints",
            "val_batches",
            "export", // what is written after training does not shape the run
        ] {
            map.remove(key);
        }
    }
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A seed for (purpose, step, micro-batch), so that randomness never depends on history.
fn derived_seed(seed: u64, purpose: u64, step: u64, micro: u64) -> u64 {
    let mut h = seed ^ 0x243f_6a88_85a3_08d3;
    for x in [purpose, step, micro] {
        h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    h
}

/// Micro-batch positions across epochs: epoch plans are rebuilt from the seed on demand.
struct Cursor {
    epoch: u64,
    plan: EpochPlan,
    /// Global index of the first micro-batch of `epoch`.
    first: u64,
}

impl Cursor {
    fn rows<'a>(&'a mut self, schedule: &Schedule, index: u64) -> &'a [Vec<usize>] {
        if index < self.first {
            self.epoch = 0;
            self.first = 0;
            self.plan = schedule.epoch(0);
        }
        while index >= self.first + self.plan.len() as u64 {
            self.first += self.plan.len() as u64;
            self.epoch += 1;
            self.plan = schedule.epoch(self.epoch);
        }
        &self.plan[(index - self.first) as usize]
    }
}

/// Mean cross-entropy per task over a micro-batch's trained tokens, as sums and counts.
fn task_sums(mb: &MicroBatch, per_row: &[f32], sums: &mut [f64; 2], counts: &mut [usize; 2]) {
    for (task, ce) in mb.token_task.iter().zip(per_row) {
        if let Some(task) = task {
            sums[task_index(*task)] += *ce as f64;
            counts[task_index(*task)] += 1;
        }
    }
}

fn task_means(sums: &[f64; 2], counts: &[usize; 2]) -> BTreeMap<String, f64> {
    [Task::Code, Task::Plan]
        .into_iter()
        .filter(|t| counts[task_index(*t)] > 0)
        .map(|t| {
            let i = task_index(t);
            (task_name(t).to_owned(), sums[i] / counts[i] as f64)
        })
        .collect()
}

/// The loss of one micro-batch and the gradient of every trained tensor (in the optimiser's
/// order; zeros for a tensor the batch does not reach).
pub fn loss_and_grads(
    model: &TrainableModel,
    opt: &AdamW,
    batch: &TokenBatch,
    dropout_rng: Option<&mut ChaCha8Rng>,
) -> Result<(CrossEntropyOutput, Vec<Tensor>)> {
    let out = model.loss(batch, dropout_rng, true)?;
    let grads = out.loss.backward()?;
    let mut list = Vec::with_capacity(opt.slots.len());
    for slot in &opt.slots {
        list.push(match grads.get(slot.var.as_tensor()) {
            Some(g) => g.clone(),
            None => slot.var.as_tensor().zeros_like()?,
        });
    }
    Ok((out, list))
}

/// Clips the gradients to `clip` (0 = no clipping) by global norm and applies one AdamW update
/// at learning rate `lr`; returns the norm before clipping.
pub fn apply_update(opt: &mut AdamW, grads: &[Tensor], lr: f64, clip: f64) -> Result<f64> {
    let grad_norm = AdamW::grad_norm(grads)?;
    if !grad_norm.is_finite() {
        return Err(TrainError::Input(format!(
            "the gradient became {grad_norm} at update {}; lower the learning rate",
            opt.step + 1
        )));
    }
    let scale = if clip > 0.0 && grad_norm > clip {
        clip / grad_norm
    } else {
        1.0
    };
    opt.update(grads, lr, scale)?;
    Ok(grad_norm)
}

/// A training run in progress.
pub struct Trainer {
    config: TrainConfig,
    model: TrainableModel,
    opt: AdamW,
    schedule: Schedule,
    val: Schedule,
    hash: String,
    parameters: usize,
}

impl Trainer {
    /// Loads the base weights and builds the model and optimiser; resumes from the newest
    /// checkpoint under `out/checkpoints` when `resume` is set.
    pub fn new(config: TrainConfig, prepared: &Prepared, resume: bool) -> Result<Self> {
        let base = BaseWeights::load_checked(&config.model, |shape, tied| {
            crate::memory::check_fits(shape, tied, &config).map(|_| ())
        })?;
        Self::from_base(config, prepared, base, resume)
    }

    /// [`Trainer::new`] from weights already in memory (`config.model` still names the
    /// tokenizer's source).
    pub fn from_base(
        config: TrainConfig,
        prepared: &Prepared,
        base: BaseWeights,
        resume: bool,
    ) -> Result<Self> {
        let parameters = base.parameter_count();
        let mut model = TrainableModel::new(&base, config.model_mode(), config.seed)?;
        if config.plan_head {
            model.add_plan_head()?;
        }
        drop(base); // in full mode the trained copies replace the base tensors
        let opt = AdamW::new(model.trainable(), config.adamw.clone());
        let pad = prepared
            .tokenizer
            .pad_id()
            .or(prepared.tokenizer.eos_id())
            .unwrap_or(0);
        let schedule = Schedule::new(
            prepared.train.clone(),
            config.max_len,
            config.batch_size,
            config.batching,
            config.seed,
            pad,
        );
        let val = Schedule::new(
            prepared.val.clone(),
            config.max_len,
            config.batch_size,
            config.batching,
            config.seed,
            pad,
        );
        let mut trainer = Trainer {
            hash: config_hash(&config),
            config,
            model,
            opt,
            schedule,
            val,
            parameters,
        };
        if resume {
            if let Some((_, dir)) = crate::checkpoint::list(&trainer.checkpoints())?.pop() {
                crate::checkpoint::load(&dir, &mut trainer.opt, &trainer.hash)?;
            }
        }
        Ok(trainer)
    }

    /// Where checkpoints go.
    pub fn checkpoints(&self) -> PathBuf {
        self.config.out.join("checkpoints")
    }

    /// The model being trained.
    pub fn model(&self) -> &TrainableModel {
        &self.model
    }

    /// Updates completed.
    pub fn step(&self) -> u64 {
        self.opt.step
    }

    /// Runs until `max_steps`, logging to `out/metrics.jsonl` and checkpointing.
    pub fn run(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        self.run_with(on_event, None)
    }

    /// [`Trainer::run`], also calling `evaluator` every `eval_pass_every` updates (and at the
    /// end) and logging what it returns (sampling and judging live outside this crate).
    pub fn run_with(
        &mut self,
        on_event: &mut dyn FnMut(Event<'_>),
        mut evaluator: Option<&mut Evaluator<'_>>,
    ) -> Result<()> {
        let out = self.config.out.clone();
        std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
        let mut log = MetricsLog::open(&out.join("metrics.jsonl"))?;
        on_event(Event::Ready {
            trainable: self.opt.parameter_count(),
            total: self.parameters,
            start_step: self.opt.step,
        });
        let mut cursor = Cursor {
            epoch: 0,
            plan: self.schedule.epoch(0),
            first: 0,
        };
        while self.opt.step < self.config.max_steps {
            let metrics = self.update(&mut cursor)?;
            let mut record = Map::new();
            record.insert("step".into(), json!(metrics.step));
            record.insert("train/loss".into(), json!(metrics.loss));
            for (task, loss) in &metrics.task_loss {
                record.insert(format!("train/loss_{task}"), json!(loss));
            }
            record.insert("train/lr".into(), json!(metrics.lr));
            record.insert("train/grad_norm".into(), json!(metrics.grad_norm));
            record.insert("train/tokens_per_s".into(), json!(metrics.tokens_per_s));
            record.insert("train/seconds".into(), json!(metrics.seconds));
            log.write(&record)?;
            on_event(Event::Step(&metrics));
            let step = self.opt.step;
            let last = step == self.config.max_steps;
            if !self.val.examples().is_empty()
                && (last
                    || (self.config.eval_every > 0 && step.is_multiple_of(self.config.eval_every)))
            {
                let losses = self.validate()?;
                let mut record = Map::new();
                record.insert("step".into(), json!(step));
                for (task, loss) in &losses {
                    record.insert(format!("val/loss_{task}"), json!(loss));
                }
                log.write(&record)?;
                on_event(Event::Validation {
                    step,
                    losses: &losses,
                });
            }
            let every = self.config.eval_pass_every;
            if let Some(evaluate) = evaluator.as_deref_mut() {
                if every > 0 && (last || step.is_multiple_of(every)) {
                    let metrics = evaluate(&self.model, step)?;
                    let mut record = Map::new();
                    record.insert("step".into(), json!(step));
                    for (k, v) in &metrics {
                        record.insert(k.clone(), json!(v));
                    }
                    log.write(&record)?;
                    on_event(Event::Evaluation {
                        step,
                        metrics: &metrics,
                    });
                }
            }
            if last || (self.config.save_every > 0 && step.is_multiple_of(self.config.save_every)) {
                let path = crate::checkpoint::save(
                    &self.checkpoints(),
                    &self.opt,
                    &self.hash,
                    self.config.keep_checkpoints,
                )?;
                on_event(Event::Checkpoint { step, path: &path });
            }
        }
        Ok(())
    }

    /// One optimiser update over `grad_accum` micro-batches.
    fn update(&mut self, cursor: &mut Cursor) -> Result<StepMetrics> {
        let started = Instant::now();
        let step = self.opt.step;
        let accum = self.config.grad_accum as u64;
        let rows: Vec<Vec<Vec<usize>>> = (0..accum)
            .map(|j| cursor.rows(&self.schedule, step * accum + j).to_vec())
            .collect();
        // The loss is the task-weighted mean over every trained token of the update.
        let counts = rows
            .iter()
            .map(|r| self.schedule.count_targets(r))
            .fold([0usize; 2], |a, c| [a[0] + c[0], a[1] + c[1]]);
        let total = (counts[0] + counts[1]).max(1) as f32;
        let w = &self.config.weights;
        let weights = [w.code / total, w.plan / total];
        let dropout = self.config.mode == ModeKind::Lora && self.config.lora_dropout > 0.0;
        let mut summed: Option<Vec<Tensor>> = None;
        let (mut loss, mut tokens) = (0f64, 0usize);
        let (mut sums, mut task_counts) = ([0f64; 2], [0usize; 2]);
        for (j, rows) in rows.iter().enumerate() {
            let mb = self
                .schedule
                .micro_batch(rows, weights, self.model.plan_head.is_some());
            tokens += mb
                .tokens
                .segments
                .iter()
                .filter(|&&s| s != u32::MAX)
                .count();
            let mut rng =
                ChaCha8Rng::seed_from_u64(derived_seed(self.config.seed, 1, step, j as u64));
            let (out, these) = loss_and_grads(
                &self.model,
                &self.opt,
                &mb.tokens,
                dropout.then_some(&mut rng),
            )?;
            loss += out.loss.to_vec0::<f32>()? as f64;
            task_sums(&mb, &out.per_row, &mut sums, &mut task_counts);
            summed = Some(match summed {
                None => these,
                Some(acc) => acc
                    .iter()
                    .zip(&these)
                    .map(|(a, b)| a.add(b))
                    .collect::<candle_core::Result<Vec<_>>>()?,
            });
        }
        let grads = summed.expect("at least one micro-batch");
        let lr = learning_rate(
            self.config.schedule,
            self.config.lr,
            step,
            self.config.max_steps,
            self.config.warmup_steps,
        );
        let grad_norm = apply_update(&mut self.opt, &grads, lr, self.config.clip_grad_norm)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(StepMetrics {
            step: self.opt.step,
            loss,
            task_loss: task_means(&sums, &task_counts),
            lr,
            grad_norm,
            tokens_per_s: tokens as f64 / seconds,
            seconds,
        })
    }

    /// Mean cross-entropy per task on the validation examples (the first `val_batches`
    /// micro-batches of a fixed order).
    pub fn validate(&self) -> Result<BTreeMap<String, f64>> {
        let plan = self.val.epoch(0);
        let (mut sums, mut counts) = ([0f64; 2], [0usize; 2]);
        for rows in plan.iter().take(self.config.val_batches.max(1)) {
            let mb = self
                .val
                .micro_batch(rows, [1.0, 1.0], self.model.plan_head.is_some());
            let out = self.model.loss(&mb.tokens, None, false)?;
            task_sums(&mb, &out.per_row, &mut sums, &mut counts);
        }
        Ok(task_means(&sums, &counts))
    }
}
