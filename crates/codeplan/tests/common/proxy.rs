//! A fault-injecting HTTP proxy for the distill tests: it stands between codeplan's client and
//! a real `codeplan serve`, answers the first requests with scripted faults (429 with
//! `Retry-After`, 500, a hang, a truncated body, malformed JSON, an exhausted quota) and
//! forwards the rest, recording every request it saw.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After: 1`.
    RateLimit,
    /// 429 with OpenAI's `insufficient_quota` error.
    Quota,
    /// 500.
    ServerError,
    /// No answer for this long, then the connection closes.
    Hang(Duration),
    /// The real answer with half its body missing (Content-Length says more).
    Truncated,
    /// 200 with a body that is not JSON.
    Malformed,
}

/// What the proxy saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request body (the same question always has the same body).
    pub body: String,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
    /// The fault it got, or `None` when forwarded whole.
    pub fault: Option<Fault>,
    /// When it arrived.
    pub received: Instant,
    /// When a complete, good answer was written back.
    pub delivered: Option<Instant>,
}

/// A running proxy.
pub struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Script {
    faults: VecDeque<Fault>,
    always: Option<Fault>,
    delay: Duration,
    upstream: String,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT/...`): the first requests get
    /// `faults` in order, every request gets `always` if set, and forwarded requests wait
    /// `delay` first.
    pub fn start(
        upstream: &str,
        faults: &[Fault],
        always: Option<Fault>,
        delay: Duration,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let authority = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let script = Arc::new(Mutex::new(Script {
            faults: faults.iter().copied().collect(),
            always,
            delay,
            upstream: authority,
        }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_thread = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let script = script.clone();
                let seen = seen_thread.clone();
                std::thread::spawn(move || handle(stream, &script, &seen));
            }
        });
        Proxy { port, seen }
    }

    /// The base URL to give as `--teacher-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn handle(mut stream: TcpStream, script: &Mutex<Script>, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            authorization = Some(line["authorization:".len()..].trim().to_owned());
        }
        head.push(line);
    }
    let mut body = vec![0u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let (fault, delay, upstream) = {
        let mut s = script.lock().unwrap();
        let fault = s.always.or_else(|| s.faults.pop_front());
        (fault, s.delay, s.upstream.clone())
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            body: String::from_utf8_lossy(&body).into_owned(),
            authorization,
            fault,
            received: Instant::now(),
            delivered: None,
        });
        seen.len() - 1
    };
    let json = "application/json";
    match fault {
        Some(Fault::RateLimit) => _ = respond(
            &mut stream,
            "429 Too Many Requests",
            &[("Retry-After", "1")],
            json,
            br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        ),
        Some(Fault::Quota) => _ = respond(
            &mut stream,
            "429 Too Many Requests",
            &[],
            json,
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        ),
        Some(Fault::ServerError) => _ = respond(
            &mut stream,
            "500 Internal Server Error",
            &[],
            json,
            br#"{"error":{"message":"boom","type":"server_error","code":"internal"}}"#,
        ),
        Some(Fault::Hang(d)) => std::thread::sleep(d),
        Some(Fault::Malformed) => _ = respond(&mut stream, "200 OK", &[], json, b"{\"choices\": [{\"mess"),
        Some(Fault::Truncated) | None => {
            std::thread::sleep(delay);
            let Some((status, answer)) = forward(&upstream, &path, &body) else {
                return;
            };
            if fault == Some(Fault::Truncated) {
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {json}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&answer[..answer.len() / 2]);
                let _ = stream.flush();
            } else if respond(&mut stream, &status, &[], json, &answer) {
                seen.lock().unwrap()[index].delivered = Some(Instant::now());
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Writes a whole response; true when it was written.
fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    kind: &str,
    body: &[u8],
) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).is_ok()
        && stream.write_all(body).is_ok()
        && stream.flush().is_ok()
}

/// Sends the request upstream; returns the status line's text after the version, and the body.
fn forward(authority: &str, path: &str, body: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut up = TcpStream::connect(authority).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.lines().next()?.split_once(' ')?.1.to_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().ok())
        })
        .flatten();
    let mut answer = raw[split + 4..].to_vec();
    if let Some(n) = length {
        answer.truncate(n);
    }
    Some((status, answer))
}
