//! When to retry a failed request, and how long to wait first.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First back-off delay; it doubles each retry.
    pub base: Duration,
    /// Longest back-off delay (and longest `Retry-After` honoured).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential with full jitter (a random
    /// point in [delay/2, delay]) so many clients do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let delay = self
            .base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.cap);
        let jitter: f64 = rand::random::<f64>();
        delay.mul_f64(0.5 + 0.5 * jitter)
    }

    /// The wait before retry `retry`: the server's `Retry-After` when it sent one (capped),
    /// else [`RetryPolicy::backoff`].
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.cap),
            None => self.backoff(retry),
        }
    }
}

/// What an HTTP status means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// Worth another attempt: 408, 409, 429 (unless out of quota), 5xx.
    Retry,
    /// This request cannot succeed (e.g. 400: the prompt is too long); others may.
    FailRequest,
    /// No request can succeed (bad key, unknown model, no quota): stop the run.
    Fatal,
}

/// Classifies a response status (with the error body, to tell quota from rate limits).
pub fn classify(status: StatusCode, body: &[u8]) -> StatusClass {
    if status.is_success() {
        return StatusClass::Success;
    }
    match status.as_u16() {
        429 if is_quota_error(body) => StatusClass::Fatal,
        408 | 409 | 429 => StatusClass::Retry,
        401 | 403 | 404 => StatusClass::Fatal,
        s if s >= 500 => StatusClass::Retry,
        _ => StatusClass::FailRequest,
    }
}

/// Whether an error body says the account is out of quota (OpenAI's `insufficient_quota`):
/// retrying that only wastes time.
pub fn is_quota_error(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let error = value.get("error").unwrap_or(&value);
    ["code", "type"]
        .iter()
        .any(|f| error.get(f).and_then(|v| v.as_str()) == Some("insufficient_quota"))
}

/// The server's requested wait: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or
/// as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|t| t.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = text("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(200), b""), StatusClass::Success);
        assert_eq!(classify(s(429), b"{}"), StatusClass::Retry);
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(classify(s(429), quota), StatusClass::Fatal);
        assert_eq!(classify(s(500), b""), StatusClass::Retry);
        assert_eq!(classify(s(503), b""), StatusClass::Retry);
        assert_eq!(classify(s(400), b""), StatusClass::FailRequest);
        assert_eq!(classify(s(401), b""), StatusClass::Fatal);
        assert_eq!(classify(s(404), b""), StatusClass::Fatal);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        let later = SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for retry in 0..6 {
            let full = Duration::from_millis(100 << retry).min(Duration::from_secs(1));
            let d = p.backoff(retry);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(5))),
            Duration::from_secs(1),
            "Retry-After is capped"
        );
    }
}
