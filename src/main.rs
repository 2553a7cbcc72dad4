//! The `inferplane` binary: one executable for the control plane, the demo, and the
//! operator's tools. Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.

mod admin;
mod bench;
mod cli;
mod database;
mod gateway;
mod installer;
mod keys;
mod lifecycle;
mod replay;
mod secrets;
mod serve;
mod ui_build;
mod workers;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogArgs, LogFormat};

/// mimalloc rather than the system allocator: under load the control plane spends a large
/// share of its CPU allocating and freeing (events, JSON, HTTP buffers), and glibc's malloc
/// was measured to cost more than twice as much there (docs/decisions/0019).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A configuration mistake: reported on one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn init_logging(args: &LogArgs) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&args.filter)
        .map_err(|e| ConfigError(format!("invalid --log filter {:?}: {e}", args.filter)))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Demo(args) => serve::demo(*args).await,
        Command::Migrate(db) => admin::migrate(db).await,
        Command::Projections { command } => admin::projections(command).await,
        Command::Catalog { command } => admin::catalog(command).await,
        Command::Keys { command } => keys::keys(command).await,
        Command::Usage { command } => keys::usage(command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Replay { command } => replay::run(command).await,
        Command::Sim { command } => serve::sim(command).await,
        Command::Worker { command } => workers::run(command).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.log) {
        eprintln!("inferplane: {e}");
        return ExitCode::from(2);
    }
    // One TLS provider for every client of the process (ring; no aws-lc).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("inferplane: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let config = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<inferplane_store::cluster::ClusterError>()
                    .is_some_and(|c| {
                        matches!(
                            c,
                            inferplane_store::cluster::ClusterError::BinariesNotFound { .. }
                        )
                    });
            eprintln!("inferplane: {e:#}");
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}
