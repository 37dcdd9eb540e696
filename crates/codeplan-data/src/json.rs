//! Reading JSONL files and pulling typed fields out of JSON objects with errors that name the field.
//!
//! Records are parsed to [`serde_json::Value`] first and then read field by field (instead of
//! deriving `Deserialize`) so that every error can say which field of which line is wrong.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{DataError, Invalid, InvalidKind};

/// The JSON type name used in messages (`expected a string, found number`).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads a whole text file, gunzipping it when it starts with the gzip magic bytes.
///
/// Detecting gzip by content rather than by the `.gz` suffix means a renamed file still loads.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, "cannot read", e))?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .map_err(|e| DataError::io(path, "cannot decompress (gzip)", e))?;
        out
    } else {
        String::from_utf8(bytes).map_err(|e| {
            DataError::io(
                path,
                "cannot read",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
            )
        })?
    };
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// The non-blank lines of a JSONL text with their 1-based line numbers.
pub(crate) fn jsonl_lines(text: &str) -> Vec<(usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// Parses one JSONL line to a JSON object.
pub(crate) fn parse_object(
    file: &Path,
    line: usize,
    text: &str,
) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Invalid::new(
            file,
            InvalidKind::MalformedJson,
            format!("expected a JSON object, found {}", type_name(&other)),
        )
        .at_line(line)),
        Err(e) => Err(Invalid::new(
            file,
            InvalidKind::MalformedJson,
            format!("malformed JSON: {}", json_error_text(&e)),
        )
        .at_line(line)),
    }
}

/// serde_json's message with its "at line 1 column N" rewritten: the line is ours, not serde's.
pub(crate) fn json_error_text(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(msg) if e.line() <= 1 => format!("{msg} at column {}", e.column()),
        Some(msg) => format!(
            "{msg} at line {} column {} of the value",
            e.line(),
            e.column()
        ),
        None => full,
    }
}

/// One JSON object being read, with the location context every error needs.
pub(crate) struct Record<'a> {
    /// The file the object came from.
    pub file: &'a Path,
    /// Its 1-based JSONL line, if any.
    pub line: Option<usize>,
    /// The problem id once known, so later field errors can name it.
    pub id: Option<String>,
    /// The object itself.
    pub obj: &'a Map<String, Value>,
}

impl<'a> Record<'a> {
    /// A record for a JSONL line.
    pub fn new(file: &'a Path, line: Option<usize>, obj: &'a Map<String, Value>) -> Self {
        Record {
            file,
            line,
            id: None,
            obj,
        }
    }

    /// An error about `field` of this record.
    pub fn err(&self, field: &str, kind: InvalidKind, message: impl Into<String>) -> Invalid {
        let mut inv = Invalid::new(self.file, kind, message)
            .in_field(field)
            .for_problem(self.id.as_deref());
        inv.line = self.line;
        inv
    }

    /// An error about this record as a whole (no field).
    pub fn err_record(&self, kind: InvalidKind, message: impl Into<String>) -> Invalid {
        let mut inv = Invalid::new(self.file, kind, message).for_problem(self.id.as_deref());
        inv.line = self.line;
        inv
    }

    /// The wrong-type error for `field`.
    pub fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> Invalid {
        self.err(
            field,
            InvalidKind::WrongType,
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    /// The value of `field`, treating JSON `null` as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    /// Whether the object has `field` (even if `null`); used for format detection.
    pub fn has(&self, field: &str) -> bool {
        self.obj.contains_key(field)
    }

    /// A required string field.
    pub fn req_str(&self, field: &str) -> Result<&'a str, Invalid> {
        match self.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
            None => Err(self.missing(field)),
        }
    }

    /// An optional string field (`null` or absent gives `None`).
    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, Invalid> {
        match self.get(field) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
            None => Ok(None),
        }
    }

    /// A required id that may be written as a string or as a non-negative integer (as text).
    pub fn req_id(&self, field: &str) -> Result<String, Invalid> {
        match self.get(field) {
            Some(v) => self.id_value(field, v),
            None => Err(self.missing(field)),
        }
    }

    /// An id value: a non-empty string, or a non-negative integer rendered in decimal.
    pub fn id_value(&self, field: &str, v: &Value) -> Result<String, Invalid> {
        match v {
            Value::String(s) if s.is_empty() => {
                Err(self.err(field, InvalidKind::BadValue, "the id is an empty string"))
            }
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => match n.as_u64() {
                Some(u) => Ok(u.to_string()),
                None => Err(self.err(
                    field,
                    InvalidKind::BadValue,
                    format!("expected a non-negative integer or a string, found number {n}"),
                )),
            },
            other => Err(self.wrong_type(field, "a string or an integer", other)),
        }
    }

    /// The missing-field error for `field`.
    pub fn missing(&self, field: &str) -> Invalid {
        self.err(field, InvalidKind::MissingField, "missing field")
    }
}
