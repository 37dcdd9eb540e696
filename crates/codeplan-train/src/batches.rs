//! Grouping examples into micro-batches: packing several examples into each row (the default)
//! or one example per row in length buckets, reshuffled every epoch from the seed alone, so a
//! resumed run sees exactly the batches an uninterrupted run would have seen.

use std::sync::Arc;

use codeplan_data::prompt::Task;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::examples::Example;
use crate::model::TokenBatch;

/// How examples share rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// Several examples per row of `max_len` tokens, each attending only to itself.
    #[default]
    Pack,
    /// One example per row; rows of similar length batched together, padded to the longest.
    Bucket,
}

/// Rows of example indices, grouped into micro-batches.
pub type EpochPlan = Vec<Vec<Vec<usize>>>;

/// A micro-batch ready for the model, with what the logger needs.
pub struct MicroBatch {
    /// The tokens.
    pub tokens: TokenBatch,
    /// The task of each position's target (`None` where nothing is trained).
    pub token_task: Vec<Option<Task>>,
    /// Trained positions per task: `[code, plan]`.
    pub target_counts: [usize; 2],
}

/// Index of a task in `[code, plan]` arrays.
pub fn task_index(task: Task) -> usize {
    match task {
        Task::Code => 0,
        Task::Plan => 1,
    }
}

/// The deterministic batch order of a training run.
pub struct Schedule {
    examples: Arc<Vec<Example>>,
    max_len: usize,
    rows_per_batch: usize,
    batching: Batching,
    seed: u64,
    pad_id: u32,
}

impl Schedule {
    /// A schedule over `examples` (each at most `max_len` tokens).
    pub fn new(
        examples: Arc<Vec<Example>>,
        max_len: usize,
        rows_per_batch: usize,
        batching: Batching,
        seed: u64,
        pad_id: u32,
    ) -> Self {
        Schedule {
            examples,
            max_len,
            rows_per_batch: rows_per_batch.max(1),
            batching,
            seed,
            pad_id,
        }
    }

    /// The examples.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// The micro-batches of `epoch`: a seeded shuffle, then packing or bucketing.
    pub fn epoch(&self, epoch: u64) -> EpochPlan {
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_0000_0000 ^ epoch);
        shuffle(&mut order, &mut rng);
        let rows: Vec<Vec<usize>> = match self.batching {
            Batching::Pack => {
                let mut rows = Vec::new();
                let mut row: Vec<usize> = Vec::new();
                let mut used = 0;
                for i in order {
                    let len = self.examples[i].tokens.len();
                    if used + len > self.max_len && !row.is_empty() {
                        rows.push(std::mem::take(&mut row));
                        used = 0;
                    }
                    row.push(i);
                    used += len;
                }
                if !row.is_empty() {
                    rows.push(row);
                }
                rows
            }
            Batching::Bucket => {
                // Sort within windows of a few batches so rows of a batch have similar lengths
                // while the order stays random at the scale of the epoch.
                let window = self.rows_per_batch * 16;
                let mut rows = Vec::new();
                for chunk in order.chunks(window) {
                    let mut chunk = chunk.to_vec();
                    chunk.sort_by_key(|&i| self.examples[i].tokens.len());
                    rows.extend(chunk.into_iter().map(|i| vec![i]));
                }
                rows
            }
        };
        let mut batches: Vec<Vec<Vec<usize>>> = rows
            .chunks(self.rows_per_batch)
            .map(|c| c.to_vec())
            .collect();
        if self.batching == Batching::Bucket {
            shuffle(&mut batches, &mut rng);
        }
        batches
    }

    /// Builds the tokens of one micro-batch; `weights[task]` is each trained position's loss
    /// weight (the caller divides task weights by the step's trained tokens).
    /// With `split_plan`, plan positions' weights go to [`TokenBatch::plan_weights`] (for a
    /// separate plan head).
    pub fn micro_batch(
        &self,
        rows: &[Vec<usize>],
        weights: [f32; 2],
        split_plan: bool,
    ) -> MicroBatch {
        let seq_len = match self.batching {
            Batching::Pack => self.max_len,
            Batching::Bucket => rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|&i| self.examples[i].tokens.len())
                        .sum::<usize>()
                })
                .max()
                .unwrap_or(1),
        }
        .max(1);
        let n = rows.len() * seq_len;
        let mut ids = vec![self.pad_id; n];
        let mut positions = vec![0u32; n];
        let mut segments = vec![u32::MAX; n];
        let mut targets = vec![0u32; n];
        let mut token_weights = vec![0f32; n];
        let mut token_task = vec![None; n];
        let mut plan_weights = if split_plan {
            vec![0f32; n]
        } else {
            Vec::new()
        };
        let mut target_counts = [0usize; 2];
        for (r, row) in rows.iter().enumerate() {
            let mut at = r * seq_len;
            for (s, &i) in row.iter().enumerate() {
                let e = &self.examples[i];
                let len = e.tokens.len();
                for t in 0..len {
                    ids[at + t] = e.tokens[t];
                    positions[at + t] = t as u32;
                    segments[at + t] = s as u32;
                    // Position t predicts token t+1; train it when t+1 is a target token.
                    if t + 1 < len && t + 1 >= e.prompt_len {
                        targets[at + t] = e.tokens[t + 1];
                        if split_plan && e.task == Task::Plan {
                            plan_weights[at + t] = weights[1];
                        } else {
                            token_weights[at + t] = weights[task_index(e.task)];
                        }
                        token_task[at + t] = Some(e.task);
                        target_counts[task_index(e.task)] += 1;
                    }
                }
                at += len;
            }
        }
        MicroBatch {
            tokens: TokenBatch {
                batch: rows.len(),
                seq_len,
                ids,
                positions: Arc::new(positions),
                segments: Arc::new(segments),
                targets: Arc::new(targets),
                weights: Arc::new(token_weights),
                plan_weights: split_plan.then(|| Arc::new(plan_weights)),
            },
            token_task,
            target_counts,
        }
    }

    /// Trained positions per task in the given rows, without building them.
    pub fn count_targets(&self, rows: &[Vec<usize>]) -> [usize; 2] {
        let mut counts = [0; 2];
        for &i in rows.iter().flatten() {
            let e = &self.examples[i];
            counts[task_index(e.task)] += e.tokens.len() - e.prompt_len.max(1);
        }
        counts
    }
}

/// Fisher–Yates with our own RNG (the order must not depend on a crate's shuffle algorithm).
fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
