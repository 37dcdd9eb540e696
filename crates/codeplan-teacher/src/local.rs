//! A local teacher: any model `codeplan-model` loads, run in this process on the serving
//! engine (requests in flight are decoded together), with no server to start.

use std::sync::Arc;

use codeplan_model::chat::ChatMessage;
use codeplan_model::model::{Model, TextRequest};
use codeplan_model::{FinishReason, SamplingParams};
use codeplan_serve::engine::{Engine, EngineConfig, JobEvent};
use codeplan_serve::Metrics;
use tokio::sync::Semaphore;

use crate::client::{Answer, Failure};
use crate::request::{ChatRequest, Reply, Usage};

/// A model answering chat requests in-process.
pub struct LocalTeacher {
    engine: Engine,
    model: Arc<Model>,
    slots: Semaphore,
    concurrency: usize,
}

impl LocalTeacher {
    /// Starts the engine for `model`, decoding up to `concurrency` requests together.
    pub fn new(model: Model, concurrency: usize) -> LocalTeacher {
        let model = Arc::new(model);
        let concurrency = concurrency.max(1);
        let config = EngineConfig {
            max_batch: concurrency,
            max_queue: concurrency.max(64),
        };
        // The engine thread ends when the last handle (ours) is dropped.
        let (engine, _thread) = Engine::start(model.clone(), config, Arc::new(Metrics::new()));
        LocalTeacher {
            engine,
            model,
            slots: Semaphore::new(concurrency),
            concurrency,
        }
    }

    /// Most requests decoded together.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        self.model.name()
    }

    /// Answers one request. The seed, temperature, top-p and token limit are honoured, so a
    /// request has the same answer every time.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Answer, Failure> {
        let fail = |message: String| Failure::Request {
            message,
            attempts: Vec::new(),
        };
        let messages: Vec<ChatMessage> = request
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        let text = self
            .model
            .render_chat(&messages)
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        let prompt = self
            .model
            .encode_prompt(&text)
            .map_err(|e| fail(e.to_string()))?;
        let context = self.model.context_length();
        if prompt.len() >= context {
            return Err(fail(format!(
                "the prompt takes {} tokens; the model's context is {context}",
                prompt.len()
            )));
        }
        let prompt_tokens = prompt.len();
        let text_request = TextRequest {
            n: 1,
            max_new_tokens: request.max_tokens.min(context - prompt_tokens),
            sampling: SamplingParams {
                temperature: request.temperature,
                top_p: request.top_p,
                top_k: 0,
                seed: request.seed,
            },
            stop: request.stop.clone(),
        };
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        let mut events = self
            .engine
            .submit(prompt, text_request)
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        while let Some(event) = events.recv().await {
            match event {
                JobEvent::Delta { .. } => {}
                JobEvent::Finished {
                    text,
                    tokens,
                    reason,
                    ..
                } => {
                    return Ok(Answer {
                        reply: Reply {
                            content: Some(text),
                            finish_reason: Some(
                                match reason {
                                    FinishReason::Stop => "stop",
                                    FinishReason::Length => "length",
                                }
                                .to_owned(),
                            ),
                            refusal: None,
                            usage: Usage {
                                prompt_tokens,
                                completion_tokens: tokens,
                            },
                            served_by: Some(self.model.name().to_owned()),
                        },
                        retries: Vec::new(),
                    })
                }
                JobEvent::Failed(message) => return Err(fail(message)),
            }
        }
        Err(Failure::Fatal("the local model's engine stopped".into()))
    }
}
