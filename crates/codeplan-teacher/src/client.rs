//! The OpenAI-compatible HTTP client: timeouts, a concurrency limit, requests- and
//! tokens-per-minute limits, and retries with exponential back-off and jitter that honour
//! `Retry-After` (but never retry an exhausted quota).

use std::num::NonZeroU32;
use std::sync::Once;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::request::{ChatRequest, Reply};
use crate::retry::{classify, retry_after, RetryPolicy, StatusClass};
use crate::TeacherError;

/// How to reach an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base URL up to `/v1` (e.g. `http://127.0.0.1:8080/v1`, `https://api.openai.com/v1`).
    pub base_url: String,
    /// Bearer token (read from an environment variable by the caller; never logged).
    pub api_key: Option<String>,
    /// Longest wait for one attempt (connect + answer).
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Most requests started per minute.
    pub requests_per_minute: Option<u32>,
    /// Most tokens (prompt estimate + `max_tokens`) asked for per minute.
    pub tokens_per_minute: Option<u32>,
}

/// One failed attempt, as recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    pub error: String,
    /// How long the client waited before the next attempt, ms.
    pub waited_ms: u64,
}

/// A successful exchange: the reply and the failed attempts before it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The parsed reply.
    pub reply: Reply,
    /// Attempts that failed first (retried).
    pub retries: Vec<Attempt>,
}

/// Why a request got no answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// This request failed (retries exhausted, or a 4xx that cannot succeed); others may work.
    Request {
        /// The last error.
        message: String,
        /// Every failed attempt.
        attempts: Vec<Attempt>,
    },
    /// No request can succeed: bad key, unknown model, exhausted quota, unreachable teacher.
    Fatal(String),
}

/// A client of one OpenAI-compatible server.
pub struct HttpTeacher {
    config: HttpConfig,
    client: reqwest::Client,
    url: String,
    slots: Semaphore,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<(DefaultDirectRateLimiter, u32)>,
}

static TLS_PROVIDER: Once = Once::new();

impl HttpTeacher {
    /// Builds the client (no request is sent).
    pub fn new(config: HttpConfig) -> Result<HttpTeacher, TeacherError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TeacherError::Config(format!(
                "--teacher-url must start with http:// or https://, got {:?}",
                config.base_url
            )));
        }
        if config.concurrency == 0 {
            return Err(TeacherError::Config(
                "--concurrency must be at least 1".into(),
            ));
        }
        TLS_PROVIDER.call_once(|| {
            // Another part of the process may have installed one already; either is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| TeacherError::Config(format!("building the HTTP client: {e}")))?;
        let per_minute = |n: u32, what: &str| {
            NonZeroU32::new(n)
                .map(|n| RateLimiter::direct(Quota::per_minute(n)))
                .ok_or_else(|| TeacherError::Config(format!("{what} must be at least 1")))
        };
        let requests = config
            .requests_per_minute
            .map(|n| per_minute(n, "--rpm"))
            .transpose()?;
        let tokens = config
            .tokens_per_minute
            .map(|n| per_minute(n, "--tpm").map(|l| (l, n)))
            .transpose()?;
        Ok(HttpTeacher {
            url: format!("{base}/chat/completions"),
            slots: Semaphore::new(config.concurrency),
            client,
            requests,
            tokens,
            config,
        })
    }

    /// Most requests in flight.
    pub fn concurrency(&self) -> usize {
        self.config.concurrency
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request, retrying what is worth retrying.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Answer, Failure> {
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        let body = request.body();
        let mut attempts = Vec::new();
        for attempt in 0..=self.config.retry.max_retries {
            self.wait_for_quota(request).await;
            let (error, status, after) = match self.attempt(&body).await {
                Ok(Outcome::Reply(reply)) => {
                    return Ok(Answer {
                        reply,
                        retries: attempts,
                    })
                }
                Ok(Outcome::Fatal(message)) => return Err(Failure::Fatal(message)),
                Ok(Outcome::Fail { status, message }) => {
                    attempts.push(Attempt {
                        status: Some(status),
                        error: message.clone(),
                        waited_ms: 0,
                    });
                    return Err(Failure::Request { message, attempts });
                }
                Ok(Outcome::Retry {
                    status,
                    message,
                    after,
                }) => (message, status, after),
                Err(message) => (message, None, None),
            };
            let last = attempt == self.config.retry.max_retries;
            let wait = if last {
                Duration::ZERO
            } else {
                self.config.retry.wait(attempt, after)
            };
            attempts.push(Attempt {
                status,
                error,
                waited_ms: wait.as_millis() as u64,
            });
            if !last {
                tokio::time::sleep(wait).await;
            }
        }
        let message = format!(
            "no answer after {} attempts; last error: {}",
            attempts.len(),
            attempts.last().map_or("", |a| a.error.as_str())
        );
        Err(Failure::Request { message, attempts })
    }

    async fn wait_for_quota(&self, request: &ChatRequest) {
        if let Some(limiter) = &self.requests {
            limiter.until_ready().await;
        }
        if let Some((limiter, per_minute)) = &self.tokens {
            let want = (request.estimated_prompt_tokens() + request.max_tokens)
                .clamp(1, *per_minute as usize) as u32;
            let n = NonZeroU32::new(want).expect("clamped to at least 1");
            // Cannot fail: `want` never exceeds the burst size (the per-minute quota).
            let _ = limiter.until_n_ready(n).await;
        }
    }

    /// One HTTP exchange. `Err` is a transport failure (connect, timeout, cut body): retried.
    async fn attempt(&self, body: &serde_json::Value) -> Result<Outcome, String> {
        let mut builder = self.client.post(&self.url).json(body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = builder.send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let after = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the response body: {}", describe(&e)))?;
        let code = status.as_u16();
        Ok(match classify(status, &bytes) {
            StatusClass::Success => match Reply::parse(&bytes) {
                Ok(reply) => Outcome::Reply(reply),
                // A 200 whose body is not a completion is a transport fault (a proxy cut it,
                // a gateway sent HTML): the answer is unusable, so ask again.
                Err(message) => Outcome::Retry {
                    status: Some(code),
                    message,
                    after: None,
                },
            },
            StatusClass::Retry => Outcome::Retry {
                status: Some(code),
                message: format!("HTTP {code}: {}", error_message(&bytes)),
                after,
            },
            StatusClass::FailRequest => Outcome::Fail {
                status: code,
                message: format!("HTTP {code}: {}", error_message(&bytes)),
            },
            StatusClass::Fatal => Outcome::Fatal(format!(
                "the teacher at {} answered HTTP {code}: {}{}",
                self.url,
                error_message(&bytes),
                match code {
                    401 | 403 => " (check the API key's environment variable, --api-key-env)",
                    404 => " (check --teacher-url and --teacher-model)",
                    _ => " (the account is out of quota; retrying will not help)",
                }
            )),
        })
    }
}

enum Outcome {
    Reply(Reply),
    Retry {
        status: Option<u16>,
        message: String,
        after: Option<Duration>,
    },
    Fail {
        status: u16,
        message: String,
    },
    Fatal(String),
}

/// The `error.message` of an OpenAI-style error body, else the start of the body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// A reqwest error with its causes, without the URL's query (which could hold a key).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut or unreadable"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
