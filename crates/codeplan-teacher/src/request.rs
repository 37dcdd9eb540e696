//! One chat request to the teacher, its content address, and what came back.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A chat message in the OpenAI wire form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// Sampling settings of a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Most tokens the answer may take.
    pub max_tokens: usize,
}

/// A chat completion request: the body of `POST /v1/chat/completions` (one choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The teacher's model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Temperature.
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Most new tokens.
    pub max_tokens: usize,
    /// The request's own seed (each request derives one, so reruns ask the same question).
    pub seed: u64,
    /// Stop sequences (sent only when there are some, so other requests keep their keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// Builds a request.
    pub fn new(model: &str, messages: Vec<Message>, sampling: Sampling, seed: u64) -> ChatRequest {
        ChatRequest {
            model: model.to_owned(),
            messages,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            seed,
            stop: Vec::new(),
        }
    }

    /// The request with these stop sequences.
    pub fn with_stop(mut self, stop: &[String]) -> ChatRequest {
        self.stop = stop.to_vec();
        self
    }

    /// The JSON body sent to the server.
    pub fn body(&self) -> Value {
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": self.messages,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "n": 1,
        });
        if !self.stop.is_empty() {
            body["stop"] = serde_json::json!(self.stop);
        }
        body
    }

    /// The content address: sha256 of the teacher's identity and the body (keys sorted), so
    /// the same question to the same teacher has the same key on every machine.
    pub fn key(&self, teacher: &str) -> String {
        // serde_json's maps are sorted by key (no `preserve_order`), so this text is canonical.
        let text = serde_json::json!({ "teacher": teacher, "body": self.body() }).to_string();
        hex(&Sha256::digest(text.as_bytes()))
    }

    /// A rough count of the prompt's tokens (4 characters per token), for estimates and
    /// tokens-per-minute limits before the server has counted them.
    pub fn estimated_prompt_tokens(&self) -> usize {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| m.content.chars().count() + 4)
            .sum();
        chars.div_ceil(4)
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Token counts the server reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

impl Usage {
    /// Adds another count.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// The teacher's answer to one request, as stored in the ledger and the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The message text (`None` when the server sent none).
    pub content: Option<String>,
    /// `stop`, `length`, `content_filter`, …
    pub finish_reason: Option<String>,
    /// The model's refusal message, when it refused (OpenAI's `message.refusal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// The model the server says answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// Why an answer cannot be used, though the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReply {
    /// No text, or only whitespace.
    Empty,
    /// Cut by `max_tokens` (`finish_reason: length`).
    Truncated,
    /// The model refused (a refusal message, or `finish_reason: content_filter`).
    Refused,
}

impl BadReply {
    /// A short description for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            BadReply::Empty => "empty answer",
            BadReply::Truncated => "answer cut by max_tokens",
            BadReply::Refused => "the model refused",
        }
    }
}

impl Reply {
    /// Parses a chat completion response body (the first choice).
    pub fn parse(body: &[u8]) -> Result<Reply, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let head: String = String::from_utf8_lossy(body).chars().take(120).collect();
            format!("the response is not JSON ({e}): {head:?}")
        })?;
        Reply::from_value(&value)
    }

    /// Reads a chat completion response already parsed.
    pub fn from_value(value: &Value) -> Result<Reply, String> {
        let choice = value
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .ok_or("the response has no `choices[0]`")?;
        let message = choice
            .get("message")
            .ok_or("`choices[0]` has no `message`")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let count = |name: &str| {
            value
                .get("usage")
                .and_then(|u| u.get(name))
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize
        };
        Ok(Reply {
            content: text(message.get("content")),
            finish_reason: text(choice.get("finish_reason")),
            refusal: text(message.get("refusal")).filter(|r| !r.is_empty()),
            usage: Usage {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
            },
            served_by: text(value.get("model")),
        })
    }

    /// The usable text, or why there is none.
    pub fn text(&self) -> Result<&str, BadReply> {
        if self.refusal.is_some() || self.finish_reason.as_deref() == Some("content_filter") {
            return Err(BadReply::Refused);
        }
        if self.finish_reason.as_deref() == Some("length") {
            return Err(BadReply::Truncated);
        }
        match self.content.as_deref() {
            Some(t) if !t.trim().is_empty() => Ok(t),
            _ => Err(BadReply::Empty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChatRequest {
        ChatRequest::new(
            "m",
            vec![Message::new("user", "hi")],
            Sampling {
                temperature: 0.2,
                top_p: 1.0,
                max_tokens: 10,
            },
            7,
        )
    }

    #[test]
    fn key_depends_on_every_setting_and_teacher() {
        let base = request().key("t");
        assert_eq!(base, request().key("t"), "stable");
        assert_eq!(base.len(), 64);
        assert_ne!(base, request().key("u"));
        let mut r = request();
        r.seed = 8;
        assert_ne!(base, r.key("t"));
        let mut r = request();
        r.temperature = 0.3;
        assert_ne!(base, r.key("t"));
        let mut r = request();
        r.messages[0].content.push(' ');
        assert_ne!(base, r.key("t"));
    }

    #[test]
    fn replies_are_classified() {
        let body = |content: &str, finish: &str| {
            format!(
                r#"{{"model":"x","choices":[{{"message":{{"role":"assistant","content":{content}}},"finish_reason":"{finish}"}}],"usage":{{"prompt_tokens":3,"completion_tokens":4}}}}"#
            )
        };
        let ok = Reply::parse(body("\"1. Read n.\"", "stop").as_bytes()).unwrap();
        assert_eq!(ok.text(), Ok("1. Read n."));
        assert_eq!(ok.usage.completion_tokens, 4);
        let cut = Reply::parse(body("\"1. Read\"", "length").as_bytes()).unwrap();
        assert_eq!(cut.text(), Err(BadReply::Truncated));
        let empty = Reply::parse(body("\"  \"", "stop").as_bytes()).unwrap();
        assert_eq!(empty.text(), Err(BadReply::Empty));
        let null = Reply::parse(body("null", "stop").as_bytes()).unwrap();
        assert_eq!(null.text(), Err(BadReply::Empty));
        let filtered = Reply::parse(body("\"x\"", "content_filter").as_bytes()).unwrap();
        assert_eq!(filtered.text(), Err(BadReply::Refused));
        let refusal = br#"{"choices":[{"message":{"content":null,"refusal":"I can't"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            Reply::parse(refusal).unwrap().text(),
            Err(BadReply::Refused)
        );
        assert!(Reply::parse(b"{\"choices\": [")
            .unwrap_err()
            .contains("not JSON"));
        assert!(Reply::parse(b"{}").unwrap_err().contains("choices"));
    }
}
