//! Serving an engine: the accept loop, [`serve`], and the in-process [`MockEngine`] helper.
//!
//! The loop is a plain hyper HTTP/1.1 server (vLLM's uvicorn speaks HTTP/1.1 only) around the
//! axum router, with `TCP_NODELAY` so each streamed token leaves at once. Connections live in a
//! `JoinSet` owned by the loop, which gives two ways to stop:
//!
//! - graceful ([`serve`]'s shutdown future, [`EngineHandle::shutdown`]): stop accepting, let
//!   in-flight requests finish, close idle keep-alive connections;
//! - hard ([`EngineHandle::kill`], or dropping the handle): abort every connection at once, as
//!   a crashed engine would; running requests are counted as cancelled.
//!
//! An idle engine costs one task, one listening socket and its counters, so a test or the demo
//! can run hundreds in one process.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::EngineConfig;
use super::fault::{Fault, FaultError};
use super::routes;
use super::state::Engine;
use super::stats::EngineStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopMode {
    Running,
    Graceful,
    Abort,
}

/// Serves a mock engine on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish and returns.
///
/// Fails at once with [`io::ErrorKind::InvalidInput`] when `config` does not
/// [`validate`](EngineConfig::validate).
pub async fn serve(
    listener: TcpListener,
    config: EngineConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let engine = build(config)?;
    let (stop_tx, stop_rx) = watch::channel(StopMode::Running);
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(StopMode::Graceful);
        // Keep the sender alive: dropping it would mean "abort".
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = run(listener, engine, stop_rx) => result,
        () = signal => Ok(()),
    }
}

fn build(config: EngineConfig) -> io::Result<Arc<Engine>> {
    config
        .validate()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    Ok(Arc::new(Engine::new(config)))
}

async fn run(
    listener: TcpListener,
    engine: Arc<Engine>,
    mut stop: watch::Receiver<StopMode>,
) -> io::Result<()> {
    let router = routes::router(engine);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() != StopMode::Running {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, router.clone(), stop.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "mock engine accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let graceful = stop.has_changed().is_ok() && *stop.borrow() == StopMode::Graceful;
    if graceful {
        loop {
            tokio::select! {
                joined = connections.join_next() => if joined.is_none() { break },
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() == StopMode::Abort {
                        break;
                    }
                }
            }
        }
    }
    connections.shutdown().await;
    Ok(())
}

async fn serve_connection(stream: TcpStream, router: Router, mut stop: watch::Receiver<StopMode>) {
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "mock engine connection ended with an error");
                }
                return;
            }
            changed = stop.changed() => {
                if changed.is_ok() && *stop.borrow() == StopMode::Running {
                    continue;
                }
                connection.as_mut().graceful_shutdown();
                break;
            }
        }
    }
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "mock engine connection ended with an error");
    }
}

/// Starts mock engines inside the current tokio runtime.
#[derive(Debug, Clone, Copy)]
pub struct MockEngine;

impl MockEngine {
    /// Binds `127.0.0.1` on a free port and serves `config` there.
    pub async fn start(config: EngineConfig) -> io::Result<EngineHandle> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(listener, config)
    }

    /// Serves `config` on an already bound listener.
    pub fn start_on(listener: TcpListener, config: EngineConfig) -> io::Result<EngineHandle> {
        let addr = listener.local_addr()?;
        let engine = build(config)?;
        let (stop, stop_rx) = watch::channel(StopMode::Running);
        let task = tokio::spawn(run(listener, engine.clone(), stop_rx));
        Ok(EngineHandle {
            addr,
            engine,
            stop,
            task: Some(task),
        })
    }
}

/// A running in-process engine. Dropping it kills the engine (see [`EngineHandle::kill`]).
#[derive(Debug)]
pub struct EngineHandle {
    /// Where the engine listens.
    pub addr: SocketAddr,
    engine: Arc<Engine>,
    stop: watch::Sender<StopMode>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl EngineHandle {
    /// `http://IP:PORT`, the root of `/health`, `/metrics` and `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://IP:PORT/v1`, the `base_url` an OpenAI SDK expects.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The served model names, in order.
    pub fn model_names(&self) -> Vec<String> {
        self.engine
            .models
            .iter()
            .map(|model| model.spec.name.clone())
            .collect()
    }

    /// Changes the injected fault; running requests see it at their next token.
    pub fn set_fault(&self, fault: Fault) -> Result<(), FaultError> {
        fault.validate()?;
        self.engine.set_fault(fault);
        Ok(())
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.engine.fault()
    }

    /// Request counters and scheduler gauges.
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        let _ = self.stop.send(StopMode::Graceful);
        self.join().await
    }

    /// Drops every connection at once (like a crashed engine) and waits for the server to end.
    pub async fn kill(mut self) -> io::Result<()> {
        let _ = self.stop.send(StopMode::Abort);
        self.join().await
    }

    async fn join(&mut self) -> io::Result<()> {
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(StopMode::Abort);
    }
}
