//! Chat templates: the model's own Jinja template (from GGUF metadata or `tokenizer_config.json`)
//! rendered with minijinja the way Hugging Face transformers renders it, so prompts at inference
//! are byte-identical to the ones the model was trained on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error};

mod functions;
use functions::{raise_exception, strftime_now, tojson};

/// The GGUF metadata key holding the chat template.
const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
const TEMPLATE_NAME: &str = "chat_template";

/// Everything that can go wrong while loading or rendering a [`ChatTemplate`].
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A metadata key or JSON field holds something other than a template.
    #[error("{location}: the chat template should be {expected}, found {found}")]
    WrongType {
        /// The GGUF key or file + field.
        location: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A file of a Hugging Face folder could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `tokenizer_config.json` is not valid JSON.
    #[error("parsing {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The template source is not valid Jinja.
    #[error("the chat template does not compile: {0}")]
    Compile(String),
    /// The template called `raise_exception(...)`, i.e. it rejects these messages.
    #[error("the chat template rejected the messages: {0}")]
    Raised(String),
    /// Rendering failed for another reason.
    #[error("rendering the chat template failed: {0}")]
    Render(String),
}

/// One chat message as templates expect it (`{"role": ..., "content": ...}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (or whatever roles the template knows).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template plus the special-token strings it may reference.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

/// The marker a `raise_exception` error carries, so render can tell it from other failures.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

impl ChatTemplate {
    /// The template in GGUF key `tokenizer.chat_template`, if the file has one; BOS/EOS strings
    /// come from `tokenizer.ggml.tokens` at the BOS/EOS ids.
    pub fn from_gguf(content: &Content) -> Result<Option<Self>, ChatError> {
        let source = match content.metadata.get(KEY_CHAT_TEMPLATE) {
            None => return Ok(None),
            Some(GgufValue::String(s)) => s.clone(),
            Some(v) => {
                return Err(ChatError::WrongType {
                    location: format!("GGUF key `{KEY_CHAT_TEMPLATE}`"),
                    expected: "a string",
                    found: format!("{:?}", v.value_type()),
                })
            }
        };
        let token = |key: &str| -> String {
            let id = content.metadata.get(key).and_then(|v| v.to_u32().ok());
            let tokens = content
                .metadata
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok());
            match (id, tokens) {
                (Some(id), Some(tokens)) => match tokens.get(id as usize) {
                    Some(GgufValue::String(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        };
        let bos = token("tokenizer.ggml.bos_token_id");
        let eos = token("tokenizer.ggml.eos_token_id");
        Self::from_source(&source, &bos, &eos).map(Some)
    }

    /// The template of a Hugging Face folder: `chat_template.jinja` if present (newer
    /// transformers save it there and prefer it), else `tokenizer_config.json`'s
    /// `chat_template`, either a string or a list of `{name, template}` of which `default` is
    /// taken. `None` when the folder has no template.
    pub fn from_hf_dir(dir: &Path) -> Result<Option<Self>, ChatError> {
        let config_path = dir.join("tokenizer_config.json");
        let config: Option<serde_json::Value> = match std::fs::read_to_string(&config_path) {
            Ok(text) => Some(
                serde_json::from_str(&text).map_err(|source| ChatError::Json {
                    path: config_path.clone(),
                    source,
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ChatError::Io {
                    path: config_path,
                    source,
                })
            }
        };
        let jinja_path = dir.join("chat_template.jinja");
        let source = match std::fs::read_to_string(&jinja_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &config {
                Some(c) => template_from_config(c, &config_path)?,
                None => None,
            },
            Err(source) => {
                return Err(ChatError::Io {
                    path: jinja_path,
                    source,
                })
            }
        };
        let Some(source) = source else {
            return Ok(None);
        };
        let token = |name: &str| -> String {
            let v = config.as_ref().and_then(|c| c.get(name));
            v.and_then(|v| v.as_str().or_else(|| v.get("content")?.as_str()))
                .unwrap_or_default()
                .to_string()
        };
        Self::from_source(&source, &token("bos_token"), &token("eos_token")).map(Some)
    }

    /// Compiles `source` with transformers' Jinja settings and helper functions.
    pub fn from_source(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        // transformers: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True);
        // keep_trailing_newline stays Jinja's default (False).
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| ChatError::Compile(describe(&e)))?;
        env.set_syntax(syntax);
        // Python string/dict/list methods (`.strip()`, `.startswith()`, `.items()` ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Python prints True/False/None where minijinja would print true/false/none.
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Bool => out
                .write_str(if value.is_true() { "True" } else { "False" })
                .map_err(Error::from),
            ValueKind::None => out.write_str("None").map_err(Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        });
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| ChatError::Compile(describe(&e)))?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends with the opening of
    /// the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::Render(describe(&e)))?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut map = BTreeMap::new();
                map.insert("role", Value::from(m.role.as_str()));
                map.insert("content", Value::from(m.content.as_str()));
                Value::from(map)
            })
            .collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            // transformers passes these as None when unused; `{% if tools %}` must be false.
            tools => (),
            documents => (),
        };
        template.render(ctx).map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if let Some(raised) = err.downcast_ref::<RaisedException>() {
                    return ChatError::Raised(raised.0.clone());
                }
                source = err.source();
            }
            ChatError::Render(describe(&e))
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn template_from_config(
    config: &serde_json::Value,
    path: &Path,
) -> Result<Option<String>, ChatError> {
    let location = format!("{} field `chat_template`", path.display());
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        // The multi-template form: [{"name": "default", "template": ...}, {"name": "tool_use", ...}].
        Some(serde_json::Value::Array(items)) => {
            let default = items
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"));
            match default
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
            {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(ChatError::WrongType {
                    location,
                    expected: "a list with a `{\"name\": \"default\", \"template\": ...}` entry",
                    found: format!(
                        "names {:?}",
                        items
                            .iter()
                            .filter_map(|t| t.get("name")?.as_str())
                            .collect::<Vec<_>>()
                    ),
                }),
            }
        }
        Some(other) => Err(ChatError::WrongType {
            location,
            expected: "a string or a list of named templates",
            found: json_type(other).to_string(),
        }),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// minijinja's error with its location and source excerpt, for messages people can act on.
fn describe(e: &Error) -> String {
    let mut out = e.to_string();
    if let Some(line) = e.line() {
        if !out.contains("line") {
            out.push_str(&format!(" (line {line})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::functions::format_time;
    use super::*;

    #[test]
    fn civil_time_matches_known_dates() {
        // 2024-02-29T13:05:09Z, a Thursday, day 60 of a leap year.
        assert_eq!(
            format_time(
                1_709_211_909,
                "%Y-%m-%d %H:%M:%S %a %A %b %B %j %y %I%p %e %%"
            )
            .unwrap(),
            "2024-02-29 13:05:09 Thu Thursday Feb February 060 24 01PM 29 %"
        );
        assert_eq!(format_time(0, "%d %b %Y").unwrap(), "01 Jan 1970");
        assert!(format_time(0, "%Q").is_err());
    }

    #[test]
    fn tojson_is_python_json_dumps() {
        let t = ChatTemplate::from_source(
            "{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'é<&>' | tojson }}|{{ 1.5 | tojson }}",
            "",
            "",
        )
        .unwrap();
        let env = &t.env;
        let tmpl = env.get_template(TEMPLATE_NAME).unwrap();
        let mut inner = BTreeMap::new();
        inner.insert(
            "a",
            Value::from(vec![Value::from(1), Value::from(true), Value::from(())]),
        );
        inner.insert("b", Value::from("q\"\n"));
        let out = tmpl
            .render(minijinja::context! { x => Value::from(inner) })
            .unwrap();
        assert_eq!(
            out,
            "{\"a\": [1, true, null], \"b\": \"q\\\"\\n\"}|{\n  \"a\": [\n    1,\n    true,\n    null\n  ],\n  \"b\": \"q\\\"\\n\"\n}|\"é<&>\"|1.5"
        );
    }
}
