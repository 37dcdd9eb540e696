//! A pool of warm sandboxed workers judging samples in parallel.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use codeplan_data::{Problem, Sample};

use crate::judge::{self, JudgeKind, JudgeLimits, SampleStatus, SampleVerdict};
use crate::python::PythonInfo;
use crate::sandbox::{Layers, SandboxLimits};
use crate::worker::Worker;
use crate::ExecError;

/// How to build the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of workers (default: one per core).
    pub jobs: usize,
    /// The interpreter.
    pub python: PythonInfo,
    /// Sandbox limits.
    pub limits: SandboxLimits,
    /// Refuse to run unless every isolation layer is in force.
    pub require_sandbox: bool,
    /// How long a worker may take to start.
    pub start_timeout: Duration,
}

impl PoolConfig {
    /// Defaults: one worker per core, default limits, layers reported but not required.
    pub fn new(python: PythonInfo) -> PoolConfig {
        PoolConfig {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            python,
            limits: SandboxLimits::default(),
            require_sandbox: false,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A worker owned by one pool thread, restarted on demand.
pub struct Slot {
    config: Arc<PoolConfig>,
    worker: Option<Worker>,
    /// Workers this slot started (1 plus restarts).
    pub starts: usize,
}

impl Slot {
    /// A slot with no worker yet.
    pub fn new(config: Arc<PoolConfig>) -> Slot {
        Slot {
            config,
            worker: None,
            starts: 0,
        }
    }

    /// The live worker, starting one if needed.
    pub fn get(&mut self) -> Result<&mut Worker, ExecError> {
        if self.worker.is_none() {
            let w = Worker::start(
                &self.config.python,
                &self.config.limits,
                self.config.start_timeout,
            )?;
            if self.config.require_sandbox && !w.layers.complete() {
                return Err(ExecError::MissingLayers(w.layers.missing().join(", ")));
            }
            self.starts += 1;
            self.worker = Some(w);
        }
        Ok(self.worker.as_mut().expect("worker just started"))
    }

    /// Kills the current worker (and everything it started); the next `get` starts a new one.
    pub fn discard(&mut self) {
        self.worker = None;
    }

    /// The address-space cap of a judged child.
    pub fn memory_bytes(&self) -> u64 {
        self.config.limits.memory_bytes
    }
}

/// One sample to judge against its problem, and how.
#[derive(Debug, Clone)]
pub struct Job {
    /// The problem.
    pub problem: Arc<Problem>,
    /// The sample.
    pub sample: Sample,
    /// `apps` or `strict`.
    pub kind: JudgeKind,
    /// Time and output limits (per problem when calibrated).
    pub limits: JudgeLimits,
}

/// Settings for judging a batch.
#[derive(Debug, Clone, Default)]
pub struct JudgeSettings {
    /// Re-run samples that timed out at twice the limits and record whether they flip.
    pub rerun_timeouts: bool,
}

/// The pool: workers are started lazily by each thread and live for one batch.
pub struct Pool {
    config: Arc<PoolConfig>,
    layers: Layers,
    hello: crate::worker::Hello,
}

impl Pool {
    /// Checks the interpreter and the sandbox by starting one worker.
    pub fn new(config: PoolConfig) -> Result<Pool, ExecError> {
        let config = Arc::new(config);
        let mut probe = Slot::new(config.clone());
        let (layers, hello) = {
            let w = probe.get()?;
            (w.layers, w.hello.clone())
        };
        Ok(Pool {
            config,
            layers,
            hello,
        })
    }

    /// Isolation layers in force (as found by the probe worker).
    pub fn layers(&self) -> Layers {
        self.layers
    }

    /// What the probe worker reported (Python and numpy versions, limits).
    pub fn hello(&self) -> &crate::worker::Hello {
        &self.hello
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Judges every job, calling `on_verdict` (on this thread) as each finishes.
    pub fn judge_all(
        &self,
        jobs: Vec<Job>,
        settings: &JudgeSettings,
        mut on_verdict: impl FnMut(SampleVerdict),
    ) {
        let queue = Mutex::new(VecDeque::from(jobs));
        let threads = self.config.jobs.max(1);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let tx = tx.clone();
                let queue = &queue;
                let config = self.config.clone();
                scope.spawn(move || {
                    let mut slot = Slot::new(config);
                    loop {
                        let job = queue.lock().expect("queue lock").pop_front();
                        let Some(job) = job else { break };
                        let v = judge_one(&mut slot, &job, settings);
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for v in rx {
                on_verdict(v);
            }
        });
    }
}

/// Judges one sample: a worker fault is retried once on a fresh worker, then reported as an
/// internal error (never as the model's failure).
pub fn judge_one(slot: &mut Slot, job: &Job, settings: &JudgeSettings) -> SampleVerdict {
    let mut verdict = attempt(slot, job, job.kind, &job.limits);
    if settings.rerun_timeouts && verdict.timed_out() {
        let again = attempt(slot, job, job.kind, &job.limits.doubled());
        verdict.rerun_passed = Some(again.passed);
    }
    verdict
}

fn attempt(slot: &mut Slot, job: &Job, kind: JudgeKind, limits: &JudgeLimits) -> SampleVerdict {
    let mut last = String::new();
    for attempt in 1..=2 {
        match judge::run(kind, slot, &job.problem, &job.sample, limits) {
            Ok(mut v) => {
                v.attempts = attempt;
                return v;
            }
            Err(fault) => {
                slot.discard();
                last = fault.0;
            }
        }
    }
    let mut v = judge::blank_verdict(kind, &job.problem, &job.sample);
    v.status = SampleStatus::InternalError;
    v.attempts = 2;
    v.internal_error = Some(last);
    v
}
