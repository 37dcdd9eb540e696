//! A real server on 127.0.0.1 with a real model, driven by a real HTTP client.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use codeplan_model::model::Model;
use codeplan_model::Precision;
use codeplan_serve::EngineConfig;
use serde_json::{json, Value};

/// The installed SmolLM2 GGUF, or `None` with a printed reason (fails instead when
/// `CODEPLAN_REQUIRE_MODELS` is set, as in CI).
fn smollm2() -> Option<PathBuf> {
    let root = std::env::var_os("CODEPLAN_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/codeplan/models"))
        })?;
    let path = root.join("smollm2-135m/model.gguf");
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CODEPLAN_REQUIRE_MODELS")
        .is_ok_and(|v| v.split(',').any(|m| m.trim() == "smollm2-135m"))
    {
        panic!("smollm2-135m is required but {} is missing", path.display());
    }
    eprintln!(
        "SKIPPED: {} missing; run `codeplan models fetch smollm2-135m`",
        path.display()
    );
    None
}

/// One server for the whole test binary (loading the model once), on a free port.
fn server() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let path = smollm2()?;
        let model = Arc::new(Model::load("smollm2-135m", &path, Precision::Native).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let (engine, _t) = codeplan_serve::start_engine(
                    model,
                    EngineConfig {
                        max_batch: 4,
                        max_queue: 64,
                    },
                );
                codeplan_serve::serve(listener, engine, std::future::pending())
                    .await
                    .unwrap();
            });
        });
        Some(format!("http://{}", rx.recv().unwrap()))
    })
    .as_deref()
}

fn client() -> reqwest::Client {
    // In a workspace build reqwest also carries codeplan-teacher's TLS feature (features are
    // unified), which needs a crypto provider installed before any client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn post_raw(url: &str, path: &str, body: &'static str) -> (u16, Value) {
    let r = client()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn health_models_and_metrics() {
    let Some(url) = server() else { return };
    let c = client();
    let health: Value = c
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let models: Value = c
        .get(format!("{url}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "smollm2-135m");
    let metrics = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("codeplan_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("codeplan_live_sequences"), "{metrics}");
}

#[tokio::test]
async fn chat_completion_with_usage_and_n() {
    let Some(url) = server() else { return };
    let (status, body) = post(
        url,
        "/v1/chat/completions",
        json!({
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            "max_tokens": 12, "temperature": 0, "n": 2
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    // Greedy: both choices are the same text.
    assert_eq!(
        choices[0]["message"]["content"],
        choices[1]["message"]["content"]
    );
    assert!(!choices[0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let usage = &body["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((2..=24).contains(&completion), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    for c in choices {
        assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn seeded_sampling_is_reproducible_and_stop_is_honoured() {
    let Some(url) = server() else { return };
    let request = json!({
        "prompt": "def add(a, b):\n", "max_tokens": 24, "temperature": 0.9, "top_p": 0.95, "seed": 1234
    });
    let (s1, a) = post(url, "/v1/completions", request.clone()).await;
    let (s2, b) = post(url, "/v1/completions", request).await;
    assert_eq!((s1, s2), (200, 200), "{a} {b}");
    assert_eq!(a["object"], "text_completion");
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    // Stop at the first newline: the text never contains one.
    let (s, c) = post(
        url,
        "/v1/completions",
        json!({"prompt": "Here is a poem about the sea:\n", "max_tokens": 48, "temperature": 0, "stop": ["\n"]}),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    let text = c["choices"][0]["text"].as_str().unwrap();
    assert!(!text.contains('\n'), "{text:?}");
}

/// Reads an SSE body into its `data:` payloads.
async fn sse(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|s| s.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn streaming_matches_the_non_streamed_text() {
    let Some(url) = server() else { return };
    let base = json!({
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three colours."}],
        "max_tokens": 20, "temperature": 0.7, "seed": 99
    });
    let (_, full) = post(url, "/v1/chat/completions", base.clone()).await;
    let mut streamed = base.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse(resp).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    for e in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(e).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(c) = chunk["choices"].get(0) {
            if let Some(t) = c["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert_eq!(
        text,
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        finish.as_deref(),
        full["choices"][0]["finish_reason"].as_str()
    );
    assert_eq!(usage.unwrap(), full["usage"]);
}

#[tokio::test]
async fn concurrent_requests_are_queued_not_refused() {
    let Some(url) = server() else { return };
    // Six requests of n=1 against a batch of 4: some wait in the queue; all succeed, and each
    // gets the same greedy text it gets alone.
    let prompts: Vec<String> = (0..6)
        .map(|i| format!("Count from {i} to {}:", i + 5))
        .collect();
    let alone = {
        let (_, b) = post(
            url,
            "/v1/completions",
            json!({"prompt": prompts[0], "max_tokens": 10, "temperature": 0}),
        )
        .await;
        b["choices"][0]["text"].clone()
    };
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let body = json!({"prompt": p, "max_tokens": 10, "temperature": 0});
            tokio::spawn(async move { post(url, "/v1/completions", body).await })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(results[0].1["choices"][0]["text"], alone);
}

#[tokio::test]
async fn a_client_that_disconnects_frees_its_slot() {
    let Some(url) = server() else { return };
    let c = client();
    let cancelled_before = metric(url, "codeplan_cancelled_requests_total").await;
    let mut resp = c
        .post(format!("{url}/v1/completions"))
        .json(&json!({"prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0.8, "stream": true, "seed": 5}))
        .send()
        .await
        .unwrap();
    // Read one chunk, then go away.
    let _ = resp.chunk().await.unwrap();
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Seed 5 writes far more than a few tokens, so the request can only end this soon by
        // being cancelled.
        let cancelled = metric(url, "codeplan_cancelled_requests_total").await;
        if cancelled > cancelled_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned request still holds its slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let Some(url) = server() else { return };
    let chat = "/v1/chat/completions";
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(u16, &str, Value, &str)> = vec![
        (
            404,
            "model_not_found",
            json!({"model": "gpt-9", "messages": msgs}),
            "gpt-9",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "n": 0}),
            "n must be",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "n": 17}),
            "n must be",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "max_tokens": 0}),
            "max_tokens",
        ),
        (
            400,
            "context_length_exceeded",
            json!({"messages": msgs, "max_tokens": 10_000_000}),
            "context length",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "temperature": 3}),
            "temperature",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "top_p": 0}),
            "top_p",
        ),
        (
            400,
            "invalid_value",
            json!({"messages": []}),
            "at least one message",
        ),
        (400, "invalid_value", json!({"messages": "hi"}), "messages"),
        (
            400,
            "invalid_value",
            json!({"messages": msgs, "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        ),
    ];
    for (status, code, body, needle) in cases {
        let (got, err) = post(url, chat, body.clone()).await;
        assert_eq!(got, status, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
        assert!(err["error"]["type"].is_string(), "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    let (got, err) = post_raw(url, chat, "{\"messages\": [").await;
    assert_eq!(got, 400);
    assert_eq!(err["error"]["code"], "invalid_json");
    let long = "word ".repeat(10_000);
    let (got, err) = post(
        url,
        "/v1/completions",
        json!({"prompt": long, "max_tokens": 4}),
    )
    .await;
    assert_eq!(got, 400, "{err}");
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    let (got, err) = post(url, "/v1/completions", json!({"prompt": [999999999u32]})).await;
    assert_eq!(got, 400, "{err}");
    let r = client()
        .get(format!("{url}/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"]["message"].is_string());
    // The server is still fine.
    let (ok, _) = post(url, chat, json!({"messages": msgs, "max_tokens": 2})).await;
    assert_eq!(ok, 200);
}

#[tokio::test]
async fn the_official_openai_client_works() {
    let Some(url) = server() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let check = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .unwrap();
    if !check.status.success() {
        if std::env::var_os("CODEPLAN_REQUIRE_MODELS").is_some() {
            panic!("the openai package is required (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED: python3 has no `openai` package (pip install openai==3.57.0)");
        return;
    }
    let base = format!("{url}/v1");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &base])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["models"], json!(["smollm2-135m"]));
    assert_eq!(seen["bad_request"]["status"], 400);
    assert_eq!(seen["bad_request"]["code"], "invalid_value");
    assert_eq!(seen["not_found"]["status"], 404);
    assert_eq!(seen["not_found"]["code"], "model_not_found");
    assert_eq!(seen["chat"], seen["stream"]);
}
