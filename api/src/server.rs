//! One inferplane process: HTTP, live stream, projections, and their orderly shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use inferplane_projections::ProjectionRunner;
use inferplane_store::{EventStore, Notifier};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::hub::StreamHub;
use crate::{AppState, OperatorToken, Settings, routes, telemetry};

/// A running process; [`shutdown`](Self::shutdown) stops it cleanly.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    /// Stops the HTTP server and live streams first (see [`shutdown`](Self::shutdown)).
    http_stop: watch::Sender<bool>,
    /// Then the gateway, whose usage buffer is appended as it stops.
    gateway_stop: watch::Sender<bool>,
    run_projections: bool,
    tasks: JoinSet<&'static str>,
    notifier: Notifier,
}

/// Starts every part of a process on `listener`.
pub async fn start(
    pool: PgPool,
    listener: TcpListener,
    token: OperatorToken,
    settings: Settings,
) -> anyhow::Result<Server> {
    let addr = listener.local_addr()?;
    // Read models must exist before the first query, whichever process leads them.
    for projection in inferplane_projections::all() {
        inferplane_projections::ensure_installed(&pool, projection.as_ref()).await?;
    }
    let notifier = Notifier::spawn(pool.clone());
    let hub = StreamHub::start(
        pool.clone(),
        notifier.subscribe(),
        settings.sse_buffer_batches,
        settings.poll_interval,
    )
    .await?;
    let (shutdown, stop) = watch::channel(false);
    let (http_stop, http_stopped) = watch::channel(false);
    let (gateway_stop, gateway_stopped) = watch::channel(false);
    let operator = token.clone();
    let gateway = inferplane_gateway::Gateway::new(
        pool.clone(),
        settings.gateway.clone(),
        Some(std::sync::Arc::new(move |t: &str| operator.verify(t))),
    )?;
    let feed = crate::gateway_feed::prime(gateway.clone(), hub.clone()).await?;
    let state = AppState {
        gateway: gateway.clone(),
        store: EventStore::new(pool.clone()),
        pool: pool.clone(),
        hub,
        operator_token: token,
        metrics: telemetry::metrics_handle(),
        settings: settings.clone(),
        shutdown: http_stopped.clone(),
    };
    let mut tasks = JoinSet::new();

    if settings.run_projections {
        for projection in inferplane_projections::all() {
            let runner = ProjectionRunner {
                projection,
                pool: pool.clone(),
                wakeups: notifier.subscribe(),
                poll_interval: settings.poll_interval,
                batch_size: settings.projection_batch,
            };
            let stop = stop.clone();
            tasks.spawn(async move {
                runner.run(stop).await;
                "projection runner"
            });
        }
    }
    tasks.spawn({
        let stop = stop.clone();
        async move {
            feed.run(stop).await;
            "gateway feed"
        }
    });
    tasks.spawn(async move {
        // Drains the usage buffer before it returns.
        gateway.run(gateway_stopped).await;
        GATEWAY_PART
    });
    tasks.spawn(report_lag(pool.clone(), stop.clone()));
    tasks.spawn(metrics_upkeep(state.metrics.clone(), stop.clone()));
    tasks.spawn(crate::routes::workers::report_staleness(
        pool.clone(),
        settings.workers.stale_after,
        stop.clone(),
    ));
    tasks.spawn(forget_idempotency_keys(
        pool.clone(),
        settings.idempotency_ttl,
        stop.clone(),
    ));

    let app = routes::router(state.clone());
    tasks.spawn(serve_http(listener, app, state.clone(), http_stopped));
    tracing::info!(%addr, "inferplane listening");
    Ok(Server {
        addr,
        state,
        shutdown,
        http_stop,
        gateway_stop,
        run_projections: settings.run_projections,
        tasks,
        notifier,
    })
}

impl Server {
    /// Wake-ups from this process's one LISTEN connection, for parts started beside the API
    /// (process managers) so that the process still listens only once.
    pub fn wakeups(&self) -> inferplane_store::WakeUps {
        self.notifier.subscribe()
    }

    /// Runs another part of the process: it gets the shutdown signal, is awaited by
    /// [`shutdown`](Self::shutdown), and ending on its own counts as a failure of the process.
    pub fn spawn_part<F, Fut>(&mut self, name: &'static str, part: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let fut = part(self.shutdown.subscribe());
        self.tasks.spawn(async move {
            fut.await;
            name
        });
    }

    /// Stops the process in order, within 10 s: the HTTP server first (no new requests; those
    /// in flight finish; live streams end with a `reconnect` event), then the gateway (its
    /// buffered usage is appended), then — after giving this process's projections up to 2 s
    /// to apply what was just appended — every other part.
    pub async fn shutdown(mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let _ = self.http_stop.send(true);
        self.join_until(HTTP_PART, deadline).await;
        let _ = self.gateway_stop.send(true);
        self.join_until(GATEWAY_PART, deadline).await;
        if self.run_projections {
            let pool = self.state.pool.clone();
            let caught_up = tokio::time::timeout(Duration::from_secs(2), async move {
                loop {
                    match inferplane_projections::status(&pool).await {
                        Ok(all) if all.iter().all(|p| p.lag_events == 0) => return,
                        Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(_) => return,
                    }
                }
            });
            let _ = caught_up.await;
        }
        let _ = self.shutdown.send(true);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => match next {
                    Some(Ok(name)) => tracing::debug!(part = name, "stopped"),
                    Some(Err(e)) => tracing::warn!(error = %e, "a part ended abnormally"),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("parts still running after 10 s; aborting them");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
    }

    /// Waits until the part `name` ended (others that end meanwhile are reaped too).
    async fn join_until(&mut self, name: &'static str, deadline: tokio::time::Instant) {
        loop {
            tokio::select! {
                next = self.tasks.join_next() => match next {
                    Some(Ok(n)) if n == name => return,
                    Some(Ok(n)) => tracing::debug!(part = n, "stopped"),
                    Some(Err(e)) => tracing::warn!(error = %e, "a part ended abnormally"),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Resolves when any part of the process ends on its own (which is a failure).
    pub async fn wait_for_failure(&mut self) -> &'static str {
        match self.tasks.join_next().await {
            Some(Ok(name)) => name,
            Some(Err(_)) => "a task that panicked",
            None => "nothing",
        }
    }
}

/// Publishes projection lag to `/metrics` from the store, whichever process leads.
async fn report_lag(pool: PgPool, mut stop: watch::Receiver<bool>) -> &'static str {
    loop {
        match inferplane_projections::status(&pool).await {
            Ok(all) => {
                for s in all {
                    let name = s.name.clone();
                    metrics::gauge!("inferplane_projection_lag_events", "projection" => name.clone())
                        .set(s.lag_events as f64);
                    metrics::gauge!("inferplane_projection_lag_seconds", "projection" => name.clone())
                        .set(s.lag_seconds);
                    metrics::gauge!("inferplane_projection_position", "projection" => name)
                        .set(s.position as f64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "projection status unavailable"),
        }
        tokio::select! {
            _ = inferplane_projections::stopped(&mut stop) => return "projection lag reporter",
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Forgets idempotency keys older than `ttl`, every ten minutes.
async fn forget_idempotency_keys(
    pool: PgPool,
    ttl: Duration,
    mut stop: watch::Receiver<bool>,
) -> &'static str {
    loop {
        let deleted = sqlx::query(
            "delete from command_idempotency where recorded_at < now() - make_interval(secs => $1)",
        )
        .bind(ttl.as_secs_f64())
        .execute(&pool)
        .await;
        match deleted {
            Ok(r) if r.rows_affected() > 0 => {
                tracing::info!(
                    forgotten = r.rows_affected(),
                    "expired idempotency keys removed"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove expired idempotency keys"),
        }
        tokio::select! {
            _ = inferplane_projections::stopped(&mut stop) => return "idempotency key expiry",
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// The HTTP/1.1 accept loop. Hand-written rather than `axum::serve` so that each connection
/// costs as little memory as possible (thousands of idle live-stream clients are normal): one
/// router shared by all connections, HTTP/1.1 only (no protocol sniffing buffer), the smallest
/// read buffer hyper allows, and no Nagle delay on small SSE writes.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> &'static str {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = inferplane_projections::stopped(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // The peer address, for the routes that check where a caller connects from (worker
        // registration). A request-mapping layer per connection costs one extension insert.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let mut stop = stop.clone();
        let state = state.clone();
        let write_timeout = state.settings.write_timeout;
        connections.spawn(async move {
            // Live-stream connections skip hyper: see `stream_conn`. They end on shutdown
            // through the stream's own `reconnect` frame.
            let opening = tokio::select! {
                o = crate::stream_conn::opening(&tcp) => o,
                _ = inferplane_projections::stopped(&mut stop) => return,
            };
            // A write that waits `write_timeout` for the peer to take bytes ends the connection.
            let tcp = crate::write_deadline::WriteDeadline::new(tcp, write_timeout);
            match opening {
                crate::stream_conn::Opening::Stream => {
                    crate::stream_conn::serve(tcp, state).await;
                    return;
                }
                crate::stream_conn::Opening::Silent => return,
                crate::stream_conn::Opening::Other => {}
            }
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(8192)
                // A client that never finishes its request head is dropped (slowloris).
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => match r {
                    Err(e) if write_timed_out(&e) => {
                        tracing::info!(error = %e, "client stopped reading: connection closed");
                    }
                    Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
                    Ok(()) => {}
                },
                _ = inferplane_projections::stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with history.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    HTTP_PART
}

/// True when hyper gave up on a connection because a write made no progress for the write
/// timeout (see [`crate::write_deadline`]).
fn write_timed_out(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return crate::write_deadline::is_write_stalled(io);
        }
        source = s.source();
    }
    false
}

/// Histograms keep their raw samples until drained: drain them every 5 s even when nothing
/// scrapes `/metrics`, so memory stays flat however long the process runs.
async fn metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) -> &'static str {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
            _ = inferplane_projections::stopped(&mut stop) => return "metrics upkeep",
        }
    }
}

const HTTP_PART: &str = "http server";
const GATEWAY_PART: &str = "gateway background";
