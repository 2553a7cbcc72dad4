//! `inferplane-mock-engine`: one mock vLLM engine as a standalone process.
//!
//! Takes vLLM-like flags (`--served-model-name`, `--max-model-len`, `--max-num-seqs`, ...) plus
//! `--listen`; every flag has an `INFERPLANE_ENGINE_*` environment twin. Exit codes: 0 after
//! Ctrl-C or SIGTERM, 1 when serving fails, 2 on bad usage or configuration.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use inferplane_worker::engine::{EngineConfig, serve};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// A mock of vLLM's OpenAI-compatible server, for development and tests without a GPU.
#[derive(Debug, Parser)]
#[command(name = "inferplane-mock-engine", version)]
struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "INFERPLANE_ENGINE_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    listen: SocketAddr,

    #[command(flatten)]
    engine: EngineConfig,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Err(err) = cli.engine.validate() {
        tracing::error!("invalid configuration: {err}");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen on {}: {err}", cli.listen);
            return ExitCode::from(1);
        }
    };
    let models: Vec<String> = cli.engine.models().into_iter().map(|m| m.name).collect();
    tracing::info!(listen = %cli.listen, ?models, "mock vLLM engine serving");
    match serve(listener, cli.engine, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("mock engine failed: {err}");
            ExitCode::from(1)
        }
    }
}
