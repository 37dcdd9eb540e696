//! The OpenAI wire format: requests, responses, stream chunks and errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use codeplan_model::chat::ChatMessage;

/// `stop`: one string or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and no choices.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields both endpoints share (unknown fields are ignored, as OpenAI clients send
/// many that do not apply).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Sampling {
    /// Must name the served model.
    pub model: Option<String>,
    /// 0 ≤ t ≤ 2; default 1.
    pub temperature: Option<f64>,
    /// (0, 1]; default 1.
    pub top_p: Option<f64>,
    /// Extension (vLLM, llama.cpp): keep the k most likely tokens; 0 or absent = all.
    pub top_k: Option<i64>,
    /// New tokens per choice.
    pub max_tokens: Option<i64>,
    /// Newer name of `max_tokens` for chat.
    pub max_completion_tokens: Option<i64>,
    /// Choices to generate.
    pub n: Option<i64>,
    /// Seed for reproducible sampling.
    pub seed: Option<i64>,
    /// Stop sequences (up to 4, as OpenAI allows).
    pub stop: Option<Stop>,
    /// Server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// A message's content: text, or a list of parts of which the text ones are used.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// `[{"type": "text", "text": "…"}, …]`.
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part content.
#[derive(Clone, Debug, Deserialize)]
pub struct ContentPart {
    /// `text` (other kinds are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A chat message as clients send it.
#[derive(Clone, Debug, Deserialize)]
pub struct WireMessage {
    /// `system`, `user`, `assistant`…
    pub role: String,
    /// The content (`null` for an empty assistant turn).
    pub content: Option<Content>,
}

impl WireMessage {
    /// The message the chat template renders; non-text parts are refused.
    pub fn into_chat(self, index: usize) -> Result<ChatMessage, ApiError> {
        let content = match self.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                "messages",
                                "invalid_value",
                                format!("messages[{index}].content: parts of type `{kind}` are not supported (text only)"),
                            ))
                        }
                    }
                }
                text
            }
        };
        Ok(ChatMessage {
            role: self.role,
            content,
        })
    }
}

/// `POST /v1/chat/completions` body.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `prompt`: a string or a list of one string.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Text.
    Text(String),
    /// A batch of texts (only one is supported per request).
    Texts(Vec<String>),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// `POST /v1/completions` body.
#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// Token counts of a response.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated over all choices.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "code"}}` with an HTTP status.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable explanation naming the offending field.
    pub message: String,
    /// `invalid_request_error`, `not_found_error`, `server_error`…
    pub kind: &'static str,
    /// Machine-readable code, e.g. `invalid_value`, `model_not_found`.
    pub code: &'static str,
    /// The request field at fault, if any.
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400 for a bad field.
    pub fn invalid(param: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code,
            param: Some(param),
        }
    }

    /// 500 for a failure on our side.
    pub fn server(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            code: "internal_error",
            param: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
