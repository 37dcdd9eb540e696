//! Helpers shared by the CLI tests: running the binary, finding the real model, starting a
//! server and asking it one question.

#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Runs `codeplan` with `args` from the repository root.
pub fn codeplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("codeplan runs")
}

/// The repository root (where `data/` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether smollm2-135m is installed; otherwise says why the test skips (or fails when
/// `CODEPLAN_REQUIRE_MODELS` names it).
pub fn have_smollm2() -> bool {
    let out = codeplan(&["models", "path", "smollm2-135m"]);
    if out.status.success() {
        return true;
    }
    if std::env::var("CODEPLAN_REQUIRE_MODELS")
        .is_ok_and(|v| v.split(',').any(|m| m.trim() == "smollm2-135m"))
    {
        panic!(
            "smollm2-135m is required but not installed: {}",
            text(&out.stderr)
        );
    }
    eprintln!("SKIPPED: smollm2-135m is not installed (codeplan models fetch smollm2-135m)");
    false
}

/// Starts `codeplan serve --model MODEL --port 0` and returns it with its base URL.
pub fn start_server(model: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeplan"))
        .args(["serve", "--model", model, "--port", "0"])
        .current_dir(repo())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "serve {model} exited before listening"
        );
        if let Some(i) = line.find("http://") {
            break line[i..].trim().to_owned();
        }
    };
    (child, url)
}

/// POSTs a 4-token chat completion with Python's own HTTP client; returns the JSON answer.
pub fn chat_once(url: &str) -> serde_json::Value {
    let body = r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}"#;
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={'Content-Type': 'application/json'}), timeout=120); print(r.read().decode())",
            &format!("{url}/v1/chat/completions"),
            body,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_str(&text(&o.stdout)).unwrap()
}
