//! `codeplan serve`: an OpenAI-compatible server for a model.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

use codeplan_serve::EngineConfig;

use crate::model_args::ModelArgs;
use crate::options::read_config;

/// Arguments of `codeplan serve` (also readable from a TOML file with `--config`).
#[derive(Args, Debug, Default, Deserialize)]
#[command(after_help = "Examples:
  codeplan serve --model smollm2-135m
  codeplan serve --model qwen2.5-coder-0.5b --port 8081 --max-batch 8
  codeplan serve --model qwen2.5-coder-1.5b --device cuda:0   # a build with --features cuda
  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Write hello world in Python\"}], \"max_tokens\": 64}'

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics (Prometheus). Listens on loopback unless --host says otherwise.")]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these options (flags override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Port [default: 8080; 0 picks a free one].
    #[arg(long)]
    pub port: Option<u16>,
    /// Most sequences decoded together [default: 16].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Most requests waiting for a slot before 503 [default: 1024].
    #[arg(long)]
    pub max_queue: Option<usize>,
}

/// Runs `codeplan serve` until Ctrl-C.
pub fn run(mut args: ServeArgs) -> Result<()> {
    if let Some(path) = args.config.clone() {
        let file: ServeArgs = read_config(&path)?;
        args.model.merge(file.model);
        args.host = args.host.or(file.host);
        args.port = args.port.or(file.port);
        args.max_batch = args.max_batch.or(file.max_batch);
        args.max_queue = args.max_queue.or(file.max_queue);
    }
    let host = args.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let addr: SocketAddr = format!("{host}:{}", args.port.unwrap_or(8080))
        .parse()
        .or_else(|_| format!("[{host}]:{}", args.port.unwrap_or(8080)).parse())
        .with_context(|| format!("--host {host} is not an IP address"))?;
    let config = EngineConfig {
        max_batch: args.max_batch.unwrap_or(16),
        max_queue: args.max_queue.unwrap_or(1024),
    };
    if config.max_batch == 0 || config.max_queue == 0 {
        bail!("--max-batch and --max-queue must be at least 1");
    }
    let model = Arc::new(args.model.load()?);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let name = model.name().to_owned();
        let device = model.decoder().placement().describe();
        let (engine, _thread) = codeplan_serve::start_engine(model, config);
        // Scripts read this line to learn the port (with --port 0).
        eprintln!("codeplan serve: {name} on {device} listening on http://{local}");
        codeplan_serve::serve(listener, engine, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
    })
}
