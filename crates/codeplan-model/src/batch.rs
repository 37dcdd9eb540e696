//! A set of sequences decoded together, one token per step, that can be joined and left at any
//! step: the engine behind both `generate` (the `n` samples of a prompt) and `serve`
//! (continuous batching of concurrent requests).

use std::time::{Duration, Instant};

use crate::cache::SequenceCache;
use crate::decoder::{Decoder, Segment};
use crate::error::{ModelError, Result};
use crate::sampling::{Sampler, SamplingParams};

/// Prompt rows fed per forward pass during prefill: bounds the attention scores' memory.
pub const PREFILL_CHUNK: usize = 512;

/// Identifies a sequence inside a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqId(pub u64);

/// Why a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token, a stop sequence, or the caller stopped it.
    Stop,
    /// `max_new_tokens`, or the model's context, was reached.
    Length,
}

/// What one prompt asks for.
#[derive(Clone, Debug)]
pub struct PromptRequest<'a> {
    /// The prompt's token ids.
    pub prompt: &'a [u32],
    /// Independent samples to draw (they share the prompt's prefill).
    pub n: usize,
    /// Upper bound on new tokens per sample.
    pub max_new_tokens: usize,
    /// Temperature, top-p, top-k and seed; sample `i` uses the random stream `seed + i`.
    pub sampling: SamplingParams,
    /// Tokens that end a sample (not included in its output).
    pub stop_ids: &'a [u32],
}

/// Something that happened to a sequence during a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A new token was generated.
    Token {
        /// The sequence.
        id: SeqId,
        /// The token.
        token: u32,
    },
    /// The sequence ended; it has left the batch.
    Finished {
        /// The sequence.
        id: SeqId,
        /// Why.
        reason: FinishReason,
        /// Every generated token (stop token excluded).
        tokens: Vec<u32>,
    },
}

struct Live {
    id: SeqId,
    cache: SequenceCache,
    sampler: Sampler,
    tokens: Vec<u32>,
    /// Sampled but not yet reported nor fed to the model.
    pending: u32,
    max_new: usize,
    stop_ids: Vec<u32>,
    finish: Option<FinishReason>,
}

/// Time spent, for tokens/s figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt processing (prefill and forking the caches).
    pub prefill: Duration,
    /// Prompt tokens processed.
    pub prefill_tokens: usize,
    /// Decode steps (one forward pass over every live sequence).
    pub decode: Duration,
    /// Decode steps run.
    pub decode_steps: usize,
    /// Tokens produced by decode steps, summed over sequences.
    pub decode_tokens: usize,
}

/// Sequences being decoded together.
#[derive(Default)]
pub struct Batch {
    live: Vec<Live>,
    next_id: u64,
    timings: Timings,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sequences still being decoded.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no sequence is left.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Accumulated timings.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Runs a prompt's prefill now and adds its `n` samples; returns their ids in sample order.
    pub fn add(&mut self, decoder: &Decoder, request: &PromptRequest<'_>) -> Result<Vec<SeqId>> {
        request.sampling.validate()?;
        if request.prompt.is_empty() {
            return Err(ModelError::InvalidRequest("the prompt is empty".into()));
        }
        if request.n == 0 {
            return Err(ModelError::InvalidRequest("n must be at least 1".into()));
        }
        let context = decoder.config().context_length;
        if request.prompt.len() >= context {
            return Err(ModelError::ContextOverflow {
                needed: request.prompt.len() + 1,
                context,
            });
        }
        let t = Instant::now();
        let mut cache = decoder.new_cache();
        let mut logits = None;
        for chunk in request.prompt.chunks(PREFILL_CHUNK) {
            logits = Some(decoder.forward(&mut [Segment {
                cache: &mut cache,
                tokens: chunk,
            }])?);
        }
        let first: Vec<f32> = logits
            .expect("the prompt is not empty")
            .squeeze(0)?
            .to_vec1()?;
        // Every sample continues the prompt's cache, kept once, shared and read-only. A single
        // sample does too, so that sample i computes exactly the same numbers whatever n is.
        let prompt_cache = cache.freeze()?;
        let caches: Vec<SequenceCache> = (0..request.n)
            .map(|_| SequenceCache::continuing(prompt_cache.clone()))
            .collect();
        let max_new = request.max_new_tokens.min(context - request.prompt.len());
        let mut ids = Vec::with_capacity(request.n);
        for (i, cache) in caches.into_iter().enumerate() {
            let id = SeqId(self.next_id);
            self.next_id += 1;
            let mut sampler = Sampler::new(request.sampling.clone(), i as u64);
            let pending = sampler.sample(&first);
            self.live.push(Live {
                id,
                cache,
                sampler,
                tokens: Vec::new(),
                pending,
                max_new,
                stop_ids: request.stop_ids.to_vec(),
                finish: None,
            });
            ids.push(id);
        }
        self.timings.prefill += t.elapsed();
        self.timings.prefill_tokens += request.prompt.len();
        Ok(ids)
    }

    /// Ends a sequence at the next step with reason `Stop` (a stop sequence in its text, or a
    /// client that went away). Unknown ids are ignored.
    pub fn stop(&mut self, id: SeqId) {
        if let Some(s) = self.live.iter_mut().find(|s| s.id == id) {
            s.finish.get_or_insert(FinishReason::Stop);
        }
    }

    /// Reports every sequence's newest token, retires the finished ones, and runs one decode
    /// step for the rest.
    pub fn step(&mut self, decoder: &Decoder) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for s in &mut self.live {
            if s.finish.is_some() {
                continue;
            }
            if s.max_new == 0 {
                s.finish = Some(FinishReason::Length);
            } else if s.stop_ids.contains(&s.pending) {
                s.finish = Some(FinishReason::Stop);
            } else {
                s.tokens.push(s.pending);
                events.push(Event::Token {
                    id: s.id,
                    token: s.pending,
                });
                if s.tokens.len() >= s.max_new {
                    s.finish = Some(FinishReason::Length);
                }
            }
        }
        self.retire(&mut events);
        if self.live.is_empty() {
            return Ok(events);
        }
        let t = Instant::now();
        let fed: Vec<[u32; 1]> = self.live.iter().map(|s| [s.pending]).collect();
        let mut segments: Vec<Segment<'_>> = self
            .live
            .iter_mut()
            .zip(&fed)
            .map(|(s, tokens)| Segment {
                cache: &mut s.cache,
                tokens,
            })
            .collect();
        let logits = decoder.forward(&mut segments)?.to_vec2::<f32>()?;
        for (s, row) in self.live.iter_mut().zip(&logits) {
            s.pending = s.sampler.sample(row);
        }
        self.timings.decode += t.elapsed();
        self.timings.decode_steps += 1;
        self.timings.decode_tokens += self.live.len();
        Ok(events)
    }

    /// Moves finished sequences out of the batch as `Finished` events.
    fn retire(&mut self, events: &mut Vec<Event>) {
        let mut i = 0;
        while i < self.live.len() {
            if let Some(reason) = self.live[i].finish {
                let s = self.live.remove(i);
                events.push(Event::Finished {
                    id: s.id,
                    reason,
                    tokens: s.tokens,
                });
            } else {
                i += 1;
            }
        }
    }
}
