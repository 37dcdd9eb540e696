//! The engine: one thread that owns the model and decodes every live request together.
//!
//! Requests wait in a queue; at each step the engine admits waiting requests while the batch
//! has room (running their prefill), runs one decode step over every live sequence of every
//! request, and sends each request its new text. A request whose receiver was dropped (the
//! client went away) has its sequences stopped at the next step, freeing their slots.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use codeplan_model::model::{Model, TextRequest};
use codeplan_model::text::TextTracker;
use codeplan_model::{Batch, Event, FinishReason, PromptRequest, SeqId};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::metrics::Metrics;

/// Limits of the engine.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Most sequences decoded together (a request with `n` choices takes `n`).
    pub max_batch: usize,
    /// Most requests waiting for a slot before new ones are refused with 503.
    pub max_queue: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch: 16,
            max_queue: 1024,
        }
    }
}

/// What the engine tells a request as it progresses.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    /// Text of choice `index` that is now final.
    Delta {
        /// The choice.
        index: usize,
        /// New text.
        text: String,
    },
    /// Choice `index` ended.
    Finished {
        /// The choice.
        index: usize,
        /// Its whole text.
        text: String,
        /// Tokens it generated.
        tokens: usize,
        /// Why it ended.
        reason: FinishReason,
    },
    /// The request failed; no more events follow.
    Failed(String),
}

struct Job {
    prompt: Vec<u32>,
    request: TextRequest,
    events: UnboundedSender<JobEvent>,
}

/// A handle to the engine thread; cloning it is cheap.
#[derive(Clone)]
pub struct Engine {
    jobs: SyncSender<Job>,
    model: Arc<Model>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
}

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full.
    #[error("the server is busy: {0} requests are already waiting")]
    QueueFull(usize),
    /// The engine thread has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl Engine {
    /// Starts the engine thread for `model`.
    pub fn start(
        model: Arc<Model>,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> (Engine, JoinHandle<()>) {
        let (tx, rx) = mpsc::sync_channel(config.max_queue);
        let thread_model = model.clone();
        let thread_metrics = metrics.clone();
        let handle = std::thread::Builder::new()
            .name("codeplan-engine".into())
            .spawn(move || run(&thread_model, rx, config, &thread_metrics))
            .expect("spawning the engine thread");
        (
            Engine {
                jobs: tx,
                model,
                metrics,
                config,
            },
            handle,
        )
    }

    /// The served model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The metrics the engine updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The engine's limits.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Queues a request; its events arrive on the returned receiver. Dropping the receiver
    /// cancels the request.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        request: TextRequest,
    ) -> Result<UnboundedReceiver<JobEvent>, SubmitError> {
        let (events, rx) = unbounded_channel();
        match self.jobs.try_send(Job {
            prompt,
            request,
            events,
        }) {
            Ok(()) => {
                self.metrics.queued.inc();
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(SubmitError::QueueFull(self.config.max_queue)),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }
}

struct Active {
    events: UnboundedSender<JobEvent>,
    seqs: Vec<SeqId>,
    remaining: usize,
}

struct Owner {
    job: u64,
    index: usize,
    tracker: TextTracker,
}

fn run(model: &Model, jobs: Receiver<Job>, config: EngineConfig, metrics: &Metrics) {
    let decoder = model.decoder();
    let mut batch = Batch::new();
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut active: HashMap<u64, Active> = HashMap::new();
    let mut owners: HashMap<SeqId, Owner> = HashMap::new();
    let mut next_job = 0u64;
    loop {
        if batch.is_empty() && waiting.is_empty() {
            match jobs.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return, // every handle is gone: shut down
            }
        }
        while let Ok(job) = jobs.try_recv() {
            waiting.push_back(job);
        }
        // Admit waiting requests while there is room (always at least one when idle).
        while let Some(job) = waiting.front() {
            if job.events.is_closed() {
                waiting.pop_front();
                metrics.queued.dec();
                metrics.cancelled.inc();
                continue;
            }
            if !batch.is_empty() && batch.len() + job.request.n > config.max_batch {
                break;
            }
            let job = waiting.pop_front().expect("front exists");
            metrics.queued.dec();
            let started = Instant::now();
            let added = batch.add(
                decoder,
                &PromptRequest {
                    prompt: &job.prompt,
                    n: job.request.n,
                    max_new_tokens: job.request.max_new_tokens,
                    sampling: job.request.sampling.clone(),
                    stop_ids: model.tokenizer().stop_ids(),
                },
            );
            match added {
                Ok(seqs) => {
                    metrics.prompt_tokens.inc_by(job.prompt.len() as u64);
                    metrics
                        .prefill_seconds
                        .inc_by(started.elapsed().as_secs_f64());
                    let id = next_job;
                    next_job += 1;
                    for (index, seq) in seqs.iter().enumerate() {
                        owners.insert(
                            *seq,
                            Owner {
                                job: id,
                                index,
                                tracker: TextTracker::new(&job.request.stop),
                            },
                        );
                    }
                    active.insert(
                        id,
                        Active {
                            events: job.events,
                            remaining: seqs.len(),
                            seqs,
                        },
                    );
                }
                Err(e) => {
                    let _ = job.events.send(JobEvent::Failed(e.to_string()));
                }
            }
        }
        // Clients that went away free their slots.
        for job in active.values() {
            if job.events.is_closed() {
                for &seq in &job.seqs {
                    batch.stop(seq);
                }
            }
        }
        metrics.live_sequences.set(batch.len() as i64);
        if batch.is_empty() {
            continue;
        }
        let events = match batch.step(decoder) {
            Ok(events) => events,
            Err(e) => {
                // A failed step leaves the caches unusable: fail every live request.
                for (_, job) in active.drain() {
                    let _ = job
                        .events
                        .send(JobEvent::Failed(format!("generation failed: {e}")));
                }
                owners.clear();
                batch = Batch::new();
                continue;
            }
        };
        for event in events {
            match event {
                Event::Token { id, token } => {
                    metrics.generated_tokens.inc();
                    let Some(owner) = owners.get_mut(&id) else {
                        continue;
                    };
                    let Some(job) = active.get(&owner.job) else {
                        continue;
                    };
                    match owner.tracker.push(model.tokenizer(), token) {
                        Ok(update) => {
                            if !update.delta.is_empty() {
                                let _ = job.events.send(JobEvent::Delta {
                                    index: owner.index,
                                    text: update.delta,
                                });
                            }
                            if update.stopped {
                                batch.stop(id);
                            }
                        }
                        Err(e) => {
                            let _ = job.events.send(JobEvent::Failed(e.to_string()));
                            for &seq in &job.seqs {
                                batch.stop(seq);
                            }
                        }
                    }
                }
                Event::Finished { id, reason, tokens } => {
                    let Some(mut owner) = owners.remove(&id) else {
                        continue;
                    };
                    let Some(job) = active.get_mut(&owner.job) else {
                        continue;
                    };
                    let rest = owner.tracker.finish();
                    if !rest.is_empty() {
                        let _ = job.events.send(JobEvent::Delta {
                            index: owner.index,
                            text: rest,
                        });
                    }
                    let _ = job.events.send(JobEvent::Finished {
                        index: owner.index,
                        text: owner.tracker.text().to_owned(),
                        tokens: tokens.len(),
                        reason,
                    });
                    job.remaining -= 1;
                    if job.remaining == 0 {
                        if job.events.is_closed() {
                            metrics.cancelled.inc();
                        } else {
                            metrics.completed.inc();
                        }
                        active.remove(&owner.job);
                    }
                }
            }
        }
        metrics.live_sequences.set(batch.len() as i64);
    }
}
