//! Chat templates: the model's own Jinja template (from GGUF metadata or `tokenizer_config.json`)
//! rendered with minijinja the way Hugging Face transformers renders it, so prompts at inference
//! are byte-identical to the ones the model was trained on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

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

/// `raise_exception(message)`: how HF templates reject a conversation they cannot format.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedException(message)))
}

/// `strftime_now(format)`: the current UTC time formatted like Python's `strftime` (the subset
/// templates use: %Y %m %d %e %H %I %M %S %p %y %j %a %A %b %B %h %%).
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(format_time(secs, &format)?))
}

/// Formats a UNIX time (UTC) with a `strftime` pattern.
fn format_time(secs: i64, format: &str) -> Result<String, Error> {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let day = doy_mar - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let month_name = MONTHS[(month - 1) as usize];
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!("{hour12:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('b') | Some('h') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('%') => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported directive %{}",
                        other.map(String::from).unwrap_or_default()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False, indent=...,
/// separators=..., sort_keys=...)`, not minijinja's HTML-safe variant (which escapes `<`, `>`,
/// `&`, `'` and would change the prompt text).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_string()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an int or a string",
                ))
            }
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() && !v.is_undefined() => {
            let item = v.get_item_by_index(0)?;
            let key = v.get_item_by_index(1)?;
            match (item.as_str(), key.as_str()) {
                (Some(i), Some(k)) => (i.to_string(), k.to_string()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ))
                }
            }
        }
        // Python's defaults: ", " without indent, "," with it; ": " always.
        _ => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
    };
    let opts = JsonOpts {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&value, &opts, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

struct JsonOpts {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn json_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline_indent(opts: &JsonOpts, depth: usize, out: &mut String) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_json(v: &Value, opts: &JsonOpts, depth: usize, out: &mut String) -> Result<(), Error> {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else if let Ok(f) = f64::try_from(v.clone()) {
                // Python prints floats with repr: always a '.0' or exponent.
                out.push_str(&python_float(f));
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::String => json_string(v.as_str().unwrap_or_default(), opts.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, depth + 1, out);
                write_json(item, opts, depth + 1, out)?;
            }
            newline_indent(opts, depth, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort();
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, depth + 1, out);
                match key.as_str() {
                    Some(k) => json_string(k, opts.ensure_ascii, out),
                    None => json_string(&key.to_string(), opts.ensure_ascii, out),
                }
                out.push_str(&opts.key_sep);
                write_json(&v.get_item(key)?, opts, depth + 1, out)?;
            }
            newline_indent(opts, depth, out);
            out.push('}');
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: a {other} value cannot be serialised"),
            ))
        }
    }
    Ok(())
}

fn python_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
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
