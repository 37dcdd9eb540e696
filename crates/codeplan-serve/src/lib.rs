//! An OpenAI-compatible HTTP server for codeplan's models.
//!
//! `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, `GET /health` and
//! `GET /metrics` (Prometheus). Concurrent requests are queued and decoded together by one
//! engine thread ([`engine`]); a client that disconnects frees its slots at the next step.
//! Bad requests get a 4xx with `{"error": {"message", "type", "param", "code"}}`.

pub mod api;
pub mod engine;
pub mod metrics;
pub mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use engine::{Engine, EngineConfig};
pub use metrics::Metrics;
pub use routes::AppState;

/// The server's routes around a running engine.
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/models", get(routes::models))
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/completions", post(routes::completions))
        .fallback(routes::not_found)
        .with_state(AppState::new(engine))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Loads nothing itself: a convenience to start the engine for an already loaded model.
pub fn start_engine(
    model: Arc<codeplan_model::model::Model>,
    config: EngineConfig,
) -> (Engine, std::thread::JoinHandle<()>) {
    Engine::start(model, config, Arc::new(Metrics::new()))
}
