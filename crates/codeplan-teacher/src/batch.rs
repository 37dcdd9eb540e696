//! OpenAI Batch files: pending requests out (`custom_id`, `method`, `url`, `body`), results
//! in. The same JSONL works with OpenAI's Batch API and with vLLM's batch runner
//! (`python -m vllm.entrypoints.openai.run_batch -i requests.jsonl -o results.jsonl`).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::ask::Question;
use crate::request::Reply;
use crate::TeacherError;

/// Writes `questions` as an OpenAI Batch input file (atomically). The `custom_id` of each line
/// is the request's content address, so results can be matched back whatever their order.
pub fn export(path: &Path, questions: &[Question]) -> Result<(), TeacherError> {
    let mut text = String::new();
    for q in questions {
        let line = serde_json::json!({
            "custom_id": q.key,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": q.request.body(),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TeacherError::io(dir, e))?;
    }
    codeplan_exec::eval::write_atomic(path, text.as_bytes()).map_err(|e| TeacherError::io(path, e))
}

/// One result of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchAnswer {
    /// The completion.
    Reply(Reply),
    /// The request failed in the batch.
    Error(String),
}

/// The results of a batch, by `custom_id`.
pub type BatchResults = HashMap<String, BatchAnswer>;

/// Reads an OpenAI Batch output file (`{"custom_id", "response": {"status_code", "body"},
/// "error"}` per line). Errors name the file and line.
pub fn import(path: &Path) -> Result<BatchResults, TeacherError> {
    let text = std::fs::read_to_string(path).map_err(|e| TeacherError::io(path, e))?;
    let mut results = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let value: Value = serde_json::from_str(line)
            .map_err(|e| TeacherError::Batch(format!("{}: not JSON: {e}", at())))?;
        let id = value
            .get("custom_id")
            .and_then(Value::as_str)
            .ok_or_else(|| TeacherError::Batch(format!("{}: no `custom_id`", at())))?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TeacherError::Batch(format!(
                "{}: `custom_id` {id:?} is not one codeplan wrote (a 64-character hex key)",
                at()
            )));
        }
        let answer =
            read_result(&value).map_err(|e| TeacherError::Batch(format!("{}: {e}", at())))?;
        results.insert(id.to_owned(), answer);
    }
    Ok(results)
}

fn read_result(value: &Value) -> Result<BatchAnswer, String> {
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned);
        return Ok(BatchAnswer::Error(format!("batch error: {message}")));
    }
    let response = value
        .get("response")
        .ok_or("no `response` and no `error`")?;
    let status = response
        .get("status_code")
        .and_then(Value::as_u64)
        .ok_or("`response.status_code` is missing")?;
    let body = response.get("body").ok_or("`response.body` is missing")?;
    if status != 200 {
        let message = body
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok(BatchAnswer::Error(format!(
            "batch: HTTP {status} {message}"
        )));
    }
    Reply::from_value(body)
        .map(BatchAnswer::Reply)
        .map_err(|e| format!("`response.body`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ChatRequest, Message, Sampling};

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let request = ChatRequest::new(
            "m",
            vec![Message::new("user", "hi")],
            Sampling {
                temperature: 0.0,
                top_p: 1.0,
                max_tokens: 5,
            },
            1,
        );
        let q = Question {
            key: request.key("t"),
            label: "plan 1 c0".into(),
            request,
        };
        let out = dir.path().join("req.jsonl");
        export(&out, std::slice::from_ref(&q)).unwrap();
        let line: Value =
            serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
        assert_eq!(line["custom_id"], q.key.as_str());
        assert_eq!(line["method"], "POST");
        assert_eq!(line["url"], "/v1/chat/completions");
        assert_eq!(line["body"]["model"], "m");

        let results = dir.path().join("res.jsonl");
        let ok = serde_json::json!({"id": "r1", "custom_id": q.key, "error": null, "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "1. Read."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}}});
        let failed = serde_json::json!({"custom_id": "b".repeat(64), "response": {"status_code": 400, "body": {"error": {"message": "too long"}}}, "error": null});
        std::fs::write(&results, format!("{ok}\n\n{failed}\n")).unwrap();
        let r = import(&results).unwrap();
        match &r[&q.key] {
            BatchAnswer::Reply(reply) => assert_eq!(reply.text(), Ok("1. Read.")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r[&"b".repeat(64)],
            BatchAnswer::Error("batch: HTTP 400 too long".into())
        );

        std::fs::write(&results, format!("{ok}\n{{\"custom_id\": \"x\"}}\n")).unwrap();
        let e = import(&results).unwrap_err().to_string();
        assert!(e.contains("res.jsonl line 2") && e.contains("\"x\""), "{e}");
        std::fs::write(&results, "{\"custom_id\":").unwrap();
        let e = import(&results).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("not JSON"), "{e}");
    }
}
