//! The HTTP handlers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use codeplan_model::model::TextRequest;
use codeplan_model::{FinishReason, ModelError, SamplingParams};

use crate::api::{ApiError, ChatRequest, CompletionRequest, Prompt, Sampling, Usage};
use crate::engine::{Engine, JobEvent, SubmitError};

/// Most choices one request may ask for.
pub const MAX_N: usize = 16;
/// Most stop sequences one request may give (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// Shared state of the handlers.
pub struct AppState {
    /// The engine serving the model.
    pub engine: Engine,
    /// When the server started (`created` of the model object).
    pub started: u64,
    next_id: AtomicU64,
}

impl AppState {
    /// State around a running engine.
    pub fn new(engine: Engine) -> Arc<Self> {
        Arc::new(AppState {
            engine,
            started: unix_now(),
            next_id: AtomicU64::new(1),
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /health`.
pub async fn health(State(st): State<Arc<AppState>>) -> Response {
    st.engine.metrics().count("health", 200);
    Json(json!({"status": "ok", "model": st.engine.model().name()})).into_response()
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.engine.metrics().count("metrics", 200);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.engine.metrics().render(),
    )
        .into_response()
}

/// `GET /v1/models`.
pub async fn models(State(st): State<Arc<AppState>>) -> Response {
    st.engine.metrics().count("models", 200);
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.engine.model().name(),
            "object": "model",
            "created": st.started,
            "owned_by": "codeplan",
            "context_length": st.engine.model().context_length(),
        }]
    }))
    .into_response()
}

/// Answers unknown paths in OpenAI's error shape.
pub async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message:
            "unknown endpoint; see GET /v1/models, POST /v1/chat/completions, POST /v1/completions"
                .into(),
        kind: "invalid_request_error",
        code: "not_found",
        param: None,
    }
    .into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

impl Kind {
    fn endpoint(self) -> &'static str {
        match self {
            Kind::Chat => "chat_completions",
            Kind::Text => "completions",
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let response = match chat_prompt(&st, &body) {
        Ok((prompt, sampling)) => generate(&st, Kind::Chat, prompt, sampling, started).await,
        Err(e) => Err(e),
    };
    finish(&st, Kind::Chat, response)
}

/// `POST /v1/completions`.
pub async fn completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let response = match text_prompt(&st, &body) {
        Ok((prompt, sampling)) => generate(&st, Kind::Text, prompt, sampling, started).await,
        Err(e) => Err(e),
    };
    finish(&st, Kind::Text, response)
}

fn finish(st: &AppState, kind: Kind, response: Result<Response, ApiError>) -> Response {
    let response = response.unwrap_or_else(IntoResponse::into_response);
    st.engine
        .metrics()
        .count(kind.endpoint(), response.status().as_u16());
    response
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_data() {
            "invalid_value"
        } else {
            "invalid_json"
        };
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ApiError::invalid(
            "body",
            code,
            format!("the request body is not a valid request{at}: {inner}"),
        )
    })?;
    de.end().map_err(|e| {
        ApiError::invalid(
            "body",
            "invalid_json",
            format!("the request body has trailing data: {e}"),
        )
    })?;
    Ok(value)
}

fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::ContextOverflow { .. } => {
            ApiError::invalid("messages", "context_length_exceeded", e.to_string())
        }
        ModelError::InvalidRequest(m) => ApiError::invalid("body", "invalid_value", m),
        ModelError::ChatTemplate(m) => ApiError::invalid(
            "messages",
            "invalid_value",
            format!("the model's chat template refused these messages: {m}"),
        ),
        other => ApiError::server(other.to_string()),
    }
}

fn check_model(st: &AppState, sampling: &Sampling) -> Result<(), ApiError> {
    let served = st.engine.model().name();
    match sampling.model.as_deref() {
        Some(name) if name != served => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{name}` does not exist; this server serves `{served}`"),
            kind: "invalid_request_error",
            code: "model_not_found",
            param: Some("model"),
        }),
        _ => Ok(()),
    }
}

fn chat_prompt(st: &AppState, body: &[u8]) -> Result<(Vec<u32>, Sampling), ApiError> {
    let request: ChatRequest = parse(body)?;
    check_model(st, &request.sampling)?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "invalid_value",
            "messages must contain at least one message",
        ));
    }
    let messages = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_chat(i))
        .collect::<Result<Vec<_>, _>>()?;
    let model = st.engine.model();
    let text = model.render_chat(&messages).map_err(model_error)?;
    let prompt = model.encode_prompt(&text).map_err(model_error)?;
    Ok((prompt, request.sampling))
}

fn text_prompt(st: &AppState, body: &[u8]) -> Result<(Vec<u32>, Sampling), ApiError> {
    let request: CompletionRequest = parse(body)?;
    check_model(st, &request.sampling)?;
    let model = st.engine.model();
    let prompt = match request.prompt {
        Prompt::Text(t) => model.encode_prompt(&t).map_err(model_error)?,
        Prompt::Texts(mut v) if v.len() == 1 => {
            model.encode_prompt(&v.remove(0)).map_err(model_error)?
        }
        Prompt::Texts(v) => {
            return Err(ApiError::invalid(
                "prompt",
                "invalid_value",
                format!("one prompt per request is supported, got {}", v.len()),
            ))
        }
        Prompt::Tokens(ids) => {
            let vocab = model.decoder().config().vocab_size;
            if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
                return Err(ApiError::invalid(
                    "prompt",
                    "invalid_value",
                    format!("token id {bad} is outside the vocabulary of {vocab} tokens"),
                ));
            }
            ids
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "invalid_value",
            "the prompt is empty",
        ));
    }
    Ok((prompt, request.sampling))
}

/// Checks every sampling field against the model and the prompt.
fn text_request(st: &AppState, s: &Sampling, prompt_len: usize) -> Result<TextRequest, ApiError> {
    let context = st.engine.model().context_length();
    if prompt_len >= context {
        return Err(ApiError::invalid(
            "messages",
            "context_length_exceeded",
            format!("This model's maximum context length is {context} tokens; the prompt has {prompt_len} tokens"),
        ));
    }
    let room = context - prompt_len;
    let n = s.n.unwrap_or(1);
    if !(1..=MAX_N as i64).contains(&n) {
        return Err(ApiError::invalid(
            "n",
            "invalid_value",
            format!("n must be between 1 and {MAX_N}, got {n}"),
        ));
    }
    let max_tokens = match s.max_completion_tokens.or(s.max_tokens) {
        None => room,
        Some(m) if m < 1 => {
            return Err(ApiError::invalid(
                "max_tokens",
                "invalid_value",
                format!("max_tokens must be at least 1, got {m}"),
            ))
        }
        Some(m) if m as u64 > room as u64 => {
            return Err(ApiError::invalid(
                "max_tokens",
                "context_length_exceeded",
                format!(
                    "This model's maximum context length is {context} tokens. However, you requested {} tokens ({prompt_len} in the prompt, {m} in the completion)",
                    prompt_len as u64 + m as u64
                ),
            ))
        }
        Some(m) => m as usize,
    };
    let temperature = s.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature",
            "invalid_value",
            format!("temperature must be between 0 and 2, got {temperature}"),
        ));
    }
    let top_p = s.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            "top_p",
            "invalid_value",
            format!("top_p must be in (0, 1], got {top_p}"),
        ));
    }
    let top_k = s.top_k.unwrap_or(0);
    if top_k < 0 {
        return Err(ApiError::invalid(
            "top_k",
            "invalid_value",
            format!("top_k must be ≥ 0, got {top_k}"),
        ));
    }
    let stop = s.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP {
        return Err(ApiError::invalid(
            "stop",
            "invalid_value",
            format!("at most {MAX_STOP} stop sequences, got {}", stop.len()),
        ));
    }
    // Without a seed, each request draws a fresh one, as OpenAI's API does.
    let seed = match s.seed {
        Some(seed) => seed as u64,
        None => {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ st.next_id.load(Ordering::Relaxed).rotate_left(32)
        }
    };
    Ok(TextRequest {
        n: n as usize,
        max_new_tokens: max_tokens,
        sampling: SamplingParams {
            temperature,
            top_p,
            top_k: top_k as usize,
            seed,
        },
        stop,
    })
}

async fn generate(
    st: &Arc<AppState>,
    kind: Kind,
    prompt: Vec<u32>,
    sampling: Sampling,
    started: Instant,
) -> Result<Response, ApiError> {
    let request = text_request(st, &sampling, prompt.len())?;
    let prompt_tokens = prompt.len();
    let n = request.n;
    let events = st.engine.submit(prompt, request).map_err(|e| match e {
        SubmitError::QueueFull(_) => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: e.to_string(),
            kind: "server_error",
            code: "server_busy",
            param: None,
        },
        SubmitError::Stopped => ApiError::server(e.to_string()),
    })?;
    let id = format!(
        "{}-{}",
        if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        st.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let header = Header {
        id,
        created: unix_now(),
        model: st.engine.model().name().to_owned(),
        kind,
        n,
        prompt_tokens,
    };
    if sampling.stream {
        let include_usage = sampling.stream_options.is_some_and(|o| o.include_usage);
        Ok(stream(st.clone(), header, events, include_usage, started))
    } else {
        let response = collect(&header, events).await?;
        st.engine
            .metrics()
            .request_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(Json(response).into_response())
    }
}

struct Header {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
    n: usize,
    prompt_tokens: usize,
}

fn reason_str(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

async fn collect(h: &Header, mut events: UnboundedReceiver<JobEvent>) -> Result<Value, ApiError> {
    let mut choices: Vec<Option<Value>> = vec![None; h.n];
    let mut completion_tokens = 0;
    let mut done = 0;
    while done < h.n {
        match events.recv().await {
            Some(JobEvent::Delta { .. }) => {}
            Some(JobEvent::Finished {
                index,
                text,
                tokens,
                reason,
            }) => {
                completion_tokens += tokens;
                done += 1;
                choices[index] = Some(match h.kind {
                    Kind::Chat => json!({
                        "index": index,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": reason_str(reason),
                        "logprobs": null,
                    }),
                    Kind::Text => json!({
                        "index": index,
                        "text": text,
                        "finish_reason": reason_str(reason),
                        "logprobs": null,
                    }),
                });
            }
            Some(JobEvent::Failed(message)) => return Err(ApiError::server(message)),
            None => {
                return Err(ApiError::server(
                    "the engine stopped before the request finished",
                ))
            }
        }
    }
    let usage = Usage {
        prompt_tokens: h.prompt_tokens,
        completion_tokens,
        total_tokens: h.prompt_tokens + completion_tokens,
    };
    Ok(json!({
        "id": h.id,
        "object": if h.kind == Kind::Chat { "chat.completion" } else { "text_completion" },
        "created": h.created,
        "model": h.model,
        "choices": choices,
        "usage": usage,
    }))
}

fn chunk(h: &Header, choices: Value) -> SseEvent {
    let object = if h.kind == Kind::Chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    SseEvent::default().data(
        json!({
            "id": h.id,
            "object": object,
            "created": h.created,
            "model": h.model,
            "choices": choices,
        })
        .to_string(),
    )
}

fn stream(
    st: Arc<AppState>,
    h: Header,
    mut events: UnboundedReceiver<JobEvent>,
    include_usage: bool,
    started: Instant,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    // The forwarding task ends when the client disconnects (send fails); dropping `events`
    // then tells the engine to free the request's slots.
    tokio::spawn(async move {
        if h.kind == Kind::Chat {
            for index in 0..h.n {
                let role = json!([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]);
                if tx.send(Ok(chunk(&h, role))).await.is_err() {
                    return;
                }
            }
        }
        let mut done = 0;
        let mut completion_tokens = 0;
        while done < h.n {
            let event = match events.recv().await {
                Some(JobEvent::Delta { index, text }) => chunk(
                    &h,
                    match h.kind {
                        Kind::Chat => {
                            json!([{"index": index, "delta": {"content": text}, "finish_reason": null}])
                        }
                        Kind::Text => {
                            json!([{"index": index, "text": text, "finish_reason": null, "logprobs": null}])
                        }
                    },
                ),
                Some(JobEvent::Finished {
                    index,
                    tokens,
                    reason,
                    ..
                }) => {
                    done += 1;
                    completion_tokens += tokens;
                    chunk(
                        &h,
                        match h.kind {
                            Kind::Chat => {
                                json!([{"index": index, "delta": {}, "finish_reason": reason_str(reason)}])
                            }
                            Kind::Text => {
                                json!([{"index": index, "text": "", "finish_reason": reason_str(reason), "logprobs": null}])
                            }
                        },
                    )
                }
                Some(JobEvent::Failed(message)) => {
                    let _ = tx
                        .send(Ok(
                            SseEvent::default().data(ApiError::server(message).body().to_string())
                        ))
                        .await;
                    return;
                }
                None => return,
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if include_usage {
            let usage = Usage {
                prompt_tokens: h.prompt_tokens,
                completion_tokens,
                total_tokens: h.prompt_tokens + completion_tokens,
            };
            let last = SseEvent::default().data(
                json!({
                    "id": h.id,
                    "object": if h.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" },
                    "created": h.created,
                    "model": h.model,
                    "choices": [],
                    "usage": usage,
                })
                .to_string(),
            );
            if tx.send(Ok(last)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
        st.engine
            .metrics()
            .request_seconds
            .observe(started.elapsed().as_secs_f64());
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}
