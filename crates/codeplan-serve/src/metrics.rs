//! Prometheus metrics of the server (`GET /metrics`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chat_completions`, `completions`, `models`…
    pub endpoint: String,
    /// HTTP status code.
    pub status: u16,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from a generation request's arrival to its last byte.
    pub request_seconds: Histogram,
    /// Requests waiting for a batch slot.
    pub queued: Gauge,
    /// Sequences being decoded.
    pub live_sequences: Gauge,
    /// Prompt tokens processed.
    pub prompt_tokens: Counter,
    /// Tokens generated.
    pub generated_tokens: Counter,
    /// Seconds spent in prefill.
    pub prefill_seconds: Counter<f64, AtomicU64>,
    /// Generation requests finished.
    pub completed: Counter,
    /// Requests whose client went away before they finished.
    pub cancelled: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the metrics under the `codeplan_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("codeplan");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let queued = Gauge::default();
        let live_sequences = Gauge::default();
        let prompt_tokens = Counter::default();
        let generated_tokens = Counter::default();
        let prefill_seconds = Counter::<f64, AtomicU64>::default();
        let completed = Counter::default();
        let cancelled = Counter::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Generation request latency",
            request_seconds.clone(),
        );
        registry.register(
            "queued_requests",
            "Requests waiting for a batch slot",
            queued.clone(),
        );
        registry.register(
            "live_sequences",
            "Sequences being decoded",
            live_sequences.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens processed",
            prompt_tokens.clone(),
        );
        registry.register(
            "generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        registry.register(
            "prefill_seconds",
            "Seconds spent in prefill",
            prefill_seconds.clone(),
        );
        registry.register(
            "completed_requests",
            "Generation requests finished",
            completed.clone(),
        );
        registry.register(
            "cancelled_requests",
            "Requests whose client went away first",
            cancelled.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            queued,
            live_sequences,
            prompt_tokens,
            generated_tokens,
            prefill_seconds,
            completed,
            cancelled,
        }
    }

    /// Counts an answered request.
    pub fn count(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_owned(),
                status,
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
