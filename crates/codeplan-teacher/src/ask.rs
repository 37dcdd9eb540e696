//! Asking the teacher a set of questions economically: answers come from the run's ledger, the
//! shared cache or an imported batch results file first; only the rest are sent, within the
//! budget, concurrently, each recorded the moment it arrives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::stream::{self, StreamExt};

use crate::batch::{BatchAnswer, BatchResults};
use crate::budget::Budget;
use crate::client::{Failure, HttpTeacher};
use crate::local::LocalTeacher;
use crate::request::{ChatRequest, Reply};
use crate::store::Store;
use crate::TeacherError;

/// A teacher that answers chat requests.
pub enum Teacher {
    /// An OpenAI-compatible server.
    Http(Box<HttpTeacher>),
    /// A model in this process.
    Local(LocalTeacher),
}

impl Teacher {
    /// Most requests it takes at once.
    pub fn concurrency(&self) -> usize {
        match self {
            Teacher::Http(t) => t.concurrency(),
            Teacher::Local(t) => t.concurrency(),
        }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<crate::client::Answer, Failure> {
        match self {
            Teacher::Http(t) => t.chat(request).await,
            Teacher::Local(t) => t.chat(request).await,
        }
    }
}

/// Where answers that are not on disk come from.
pub enum Source<'a> {
    /// Ask the teacher.
    Teacher(&'a Teacher),
    /// Ask nothing: count what would be asked.
    DryRun,
    /// Ask nothing: write what would be asked to an OpenAI Batch JSONL file.
    Export(PathBuf),
}

/// One question: its key, a label for the ledger, and the request.
#[derive(Debug, Clone)]
pub struct Question {
    /// Content address.
    pub key: String,
    /// `plan 4787 c1` …
    pub label: String,
    /// The request.
    pub request: ChatRequest,
}

/// The fate of one question.
#[derive(Debug, Clone)]
pub enum Asked {
    /// Answered (now or before).
    Answer(Reply),
    /// No answer: the error.
    Failed(String),
    /// Not asked (budget reached, run stopped, dry run or export).
    NotSent,
}

/// Counts of one asking round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AskStats {
    /// Questions.
    pub questions: usize,
    /// Answered from the run's ledger or the shared cache.
    pub reused: usize,
    /// Answered from an imported batch results file.
    pub imported: usize,
    /// Sent to the teacher and answered.
    pub sent: usize,
    /// Without an answer (sent and failed, or failed in the batch).
    pub failed: usize,
    /// Retried attempts.
    pub retries: usize,
    /// Not asked.
    pub not_sent: usize,
}

/// Why asking stopped early.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// A cap (`--max-cost`, `--max-requests`) was reached.
    Budget,
    /// The teacher cannot answer anything (bad key, unknown model, no quota).
    Fatal {
        /// The teacher's error.
        message: String,
    },
}

/// What asks the questions of one run.
pub struct Asker<'a> {
    /// The run's ledger and cache.
    pub store: &'a Store,
    /// Spending caps.
    pub budget: &'a Budget,
    /// Where new answers come from.
    pub source: &'a Source<'a>,
    /// Answers imported from a batch results file.
    pub imported: Option<&'a BatchResults>,
    /// Set once the run must stop asking.
    pub stop: Mutex<Option<Stop>>,
    /// Batch results used (to report the ones matching nothing).
    pub used_imports: Mutex<Vec<String>>,
}

impl<'a> Asker<'a> {
    /// An asker with nothing stopped yet.
    pub fn new(
        store: &'a Store,
        budget: &'a Budget,
        source: &'a Source<'a>,
        imported: Option<&'a BatchResults>,
    ) -> Asker<'a> {
        Asker {
            store,
            budget,
            source,
            imported,
            stop: Mutex::new(None),
            used_imports: Mutex::new(Vec::new()),
        }
    }

    /// Why asking stopped, if it did.
    pub fn stopped(&self) -> Option<Stop> {
        self.stop.lock().expect("stop lock").clone()
    }

    /// Answers every question; `on_done(done)` is called as each one settles.
    pub fn ask_all(
        &self,
        questions: &[Question],
        on_done: &(dyn Fn(usize, AskStats) + Sync),
    ) -> Result<(Vec<Asked>, AskStats), TeacherError> {
        let mut results: Vec<Option<Asked>> = vec![None; questions.len()];
        let mut stats = AskStats {
            questions: questions.len(),
            ..AskStats::default()
        };
        let mut pending = Vec::new();
        for (i, q) in questions.iter().enumerate() {
            if let Some(reply) = self.store.lookup(&q.key, &q.label)? {
                results[i] = Some(Asked::Answer(reply));
                stats.reused += 1;
                continue;
            }
            if let Some(answer) = self.imported.and_then(|b| b.get(&q.key)) {
                self.used_imports
                    .lock()
                    .expect("imports lock")
                    .push(q.key.clone());
                results[i] = Some(match answer {
                    BatchAnswer::Reply(reply) => {
                        self.store.record_answer(
                            &q.key,
                            &q.label,
                            "batch",
                            &q.request.body(),
                            reply,
                            &[],
                        )?;
                        stats.imported += 1;
                        Asked::Answer(reply.clone())
                    }
                    BatchAnswer::Error(e) => {
                        self.store.record_failure(&q.key, &q.label, e, &[])?;
                        stats.failed += 1;
                        Asked::Failed(e.clone())
                    }
                });
                continue;
            }
            pending.push(i);
        }
        let settled = AtomicUsize::new(questions.len() - pending.len());
        on_done(settled.load(Ordering::Relaxed), stats);
        // No more futures than the teacher takes at once: the stop and budget checks happen
        // right before each request is sent, so a fatal answer or a cap stops the rest.
        let teacher = match self.source {
            Source::Teacher(t) if self.stopped().is_none() => Some(*t),
            _ => None,
        };
        if let Some(teacher) = teacher {
            let shared = Mutex::new((stats, Vec::<(usize, Asked)>::new()));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TeacherError::Config(format!("starting the async runtime: {e}")))?;
            let record_error = Mutex::new(None);
            runtime.block_on(stream::iter(pending.iter().copied()).for_each_concurrent(
                teacher.concurrency(),
                |i| {
                    let q = &questions[i];
                    let shared = &shared;
                    let settled = &settled;
                    let record_error = &record_error;
                    async move {
                        let asked = self.send(teacher, q, record_error).await;
                        let mut s = shared.lock().expect("stats lock");
                        match &asked.0 {
                            Asked::Answer(_) => s.0.sent += 1,
                            Asked::Failed(_) => s.0.failed += 1,
                            Asked::NotSent => s.0.not_sent += 1,
                        }
                        s.0.retries += asked.1;
                        s.1.push((i, asked.0));
                        let done = settled.fetch_add(1, Ordering::Relaxed) + 1;
                        on_done(done, s.0);
                    }
                },
            ));
            if let Some(e) = record_error.into_inner().expect("error lock") {
                return Err(e);
            }
            let (s, answers) = shared.into_inner().expect("stats lock");
            stats = s;
            for (i, a) in answers {
                results[i] = Some(a);
            }
        } else {
            stats.not_sent += pending.len();
        }
        let results = results
            .into_iter()
            .map(|r| r.unwrap_or(Asked::NotSent))
            .collect();
        Ok((results, stats))
    }

    /// Sends one question unless the run has stopped; returns the outcome and its retries.
    async fn send(
        &self,
        teacher: &Teacher,
        q: &Question,
        record_error: &Mutex<Option<TeacherError>>,
    ) -> (Asked, usize) {
        // Stopped by a cap or a fatal answer, or an answer could not be recorded.
        if self.stopped().is_some() || record_error.lock().expect("error lock").is_some() {
            return (Asked::NotSent, 0);
        }
        let Some(reservation) = self
            .budget
            .reserve(q.request.estimated_prompt_tokens(), q.request.max_tokens)
        else {
            self.stop
                .lock()
                .expect("stop lock")
                .get_or_insert(Stop::Budget);
            return (Asked::NotSent, 0);
        };
        let outcome = teacher.chat(&q.request).await;
        let (asked, retries, usage) = match outcome {
            Ok(answer) => {
                let r = self.store.record_answer(
                    &q.key,
                    &q.label,
                    "teacher",
                    &q.request.body(),
                    &answer.reply,
                    &answer.retries,
                );
                if let Err(e) = r {
                    // The answer could not be made durable: stop rather than pay for more.
                    record_error.lock().expect("error lock").get_or_insert(e);
                }
                let usage = answer.reply.usage;
                (
                    Asked::Answer(answer.reply),
                    answer.retries.len(),
                    Some(usage),
                )
            }
            Err(Failure::Request { message, attempts }) => {
                if let Err(e) = self
                    .store
                    .record_failure(&q.key, &q.label, &message, &attempts)
                {
                    record_error.lock().expect("error lock").get_or_insert(e);
                }
                let retries = attempts.len().saturating_sub(1);
                (Asked::Failed(message), retries, None)
            }
            Err(Failure::Fatal(message)) => {
                self.stop
                    .lock()
                    .expect("stop lock")
                    .get_or_insert(Stop::Fatal {
                        message: message.clone(),
                    });
                (Asked::Failed(message), 0, None)
            }
        };
        self.budget.settle(reservation, usage);
        (asked, retries)
    }
}

/// Keys of batch results that matched no question of the run.
pub fn unmatched_imports(imported: &BatchResults, used: &[String]) -> Vec<String> {
    let used: std::collections::HashSet<&str> = used.iter().map(String::as_str).collect();
    let mut keys: Vec<String> = imported
        .keys()
        .filter(|k| !used.contains(k.as_str()))
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Questions grouped by key (the same question asked twice is sent once).
pub fn dedup(questions: &[Question]) -> (Vec<Question>, Vec<usize>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut map = Vec::with_capacity(questions.len());
    for q in questions {
        let i = *index.entry(q.key.as_str()).or_insert_with(|| {
            unique.push(q.clone());
            unique.len() - 1
        });
        map.push(i);
    }
    (unique, map)
}
