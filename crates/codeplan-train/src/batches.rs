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

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, task: Task, len: usize, prompt_len: usize) -> Example {
        Example {
            problem_id: id.into(),
            task,
            tokens: (0..len as u32).map(|t| t + 100).collect(),
            prompt_len,
            truncated: false,
        }
    }

    fn examples() -> Arc<Vec<Example>> {
        Arc::new(vec![
            example("a", Task::Code, 10, 4),
            example("b", Task::Plan, 6, 3),
            example("c", Task::Code, 12, 5),
            example("d", Task::Code, 3, 1),
            example("e", Task::Plan, 16, 8),
        ])
    }

    #[test]
    fn packing_keeps_examples_whole_and_trains_only_targets() {
        let s = Schedule::new(examples(), 16, 2, Batching::Pack, 7, 0);
        let plan = s.epoch(0);
        let all: Vec<usize> = plan.iter().flatten().flatten().copied().collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2, 3, 4],
            "every example exactly once per epoch"
        );
        for rows in &plan {
            for row in rows {
                let used: usize = row.iter().map(|&i| s.examples()[i].tokens.len()).sum();
                assert!(used <= 16, "a row holds at most max_len tokens");
            }
            let mb = s.micro_batch(rows, [1.0, 2.0], false);
            assert_eq!(mb.tokens.ids.len(), rows.len() * 16);
            let counts = s.count_targets(rows);
            assert_eq!(mb.target_counts, counts);
            for t in 0..mb.tokens.ids.len() {
                let w = mb.tokens.weights[t];
                match mb.token_task[t] {
                    Some(task) => {
                        assert_eq!(w, if task == Task::Code { 1.0 } else { 2.0 });
                        // The target is the next token of the same example.
                        assert_eq!(mb.tokens.targets[t], mb.tokens.ids[t + 1]);
                        assert_eq!(mb.tokens.segments[t], mb.tokens.segments[t + 1]);
                        assert_eq!(mb.tokens.positions[t + 1], mb.tokens.positions[t] + 1);
                    }
                    None => assert_eq!(w, 0.0),
                }
            }
        }
        // A different epoch is another order; the same epoch is the same order.
        assert_eq!(s.epoch(0), plan);
        let e1: Vec<usize> = s.epoch(1).iter().flatten().flatten().copied().collect();
        assert_ne!(e1, all);
    }

    #[test]
    fn positions_restart_per_packed_example_and_prompts_are_masked() {
        let s = Schedule::new(examples(), 32, 1, Batching::Pack, 0, 0);
        let mb = s.micro_batch(&[vec![0, 1]], [1.0, 1.0], false);
        // Example 0 (10 tokens, prompt 4) then example 1 (6 tokens, prompt 3), then padding.
        assert_eq!(&mb.tokens.positions[8..12], &[8, 9, 0, 1]);
        assert_eq!(&mb.tokens.segments[9..11], &[0, 1]);
        // Positions 0..2 predict prompt tokens; 3..8 predict targets; 9 is the last token.
        let trained: Vec<usize> = (0..32).filter(|&t| mb.token_task[t].is_some()).collect();
        assert_eq!(trained, vec![3, 4, 5, 6, 7, 8, 12, 13, 14]);
        assert!(mb.tokens.segments[16..].iter().all(|&s| s == u32::MAX));
        assert_eq!(mb.target_counts, [6, 3]);
    }

    #[test]
    fn buckets_pad_to_the_longest_row_and_split_plan_weights() {
        let s = Schedule::new(examples(), 64, 2, Batching::Bucket, 3, 0);
        for rows in s.epoch(0) {
            assert!(rows.iter().all(|r| r.len() == 1), "one example per row");
            let longest = rows
                .iter()
                .map(|r| s.examples()[r[0]].tokens.len())
                .max()
                .unwrap();
            let mb = s.micro_batch(&rows, [1.0, 1.0], true);
            assert_eq!(mb.tokens.seq_len, longest);
            let plan = mb.tokens.plan_weights.as_ref().unwrap();
            for t in 0..mb.tokens.ids.len() {
                match mb.token_task[t] {
                    Some(Task::Plan) => assert!(plan[t] > 0.0 && mb.tokens.weights[t] == 0.0),
                    Some(Task::Code) => assert!(plan[t] == 0.0 && mb.tokens.weights[t] > 0.0),
                    None => assert!(plan[t] == 0.0 && mb.tokens.weights[t] == 0.0),
                }
            }
        }
    }
}
