//! The client process of the fan-out benchmark (`bench --sse-clients-worker ADDR`): opens the
//! connections, then reports on stdout, one line each:
//! `ready <connected> <failed>`, then `r <position> <received at, ns since epoch>` per event
//! and client, `cut` per client cut off, `error <message>` per failed client, and `done`.
//! Clients stop once they got `--worker-events` events, or when stdin closes.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::sse_client::connect_many;

/// Environment variable that hands the operator token to the worker (not on its command line).
pub const TOKEN_ENV: &str = "INFERPLANE_BENCH_WORKER_TOKEN";

pub async fn run(addr: SocketAddr, clients: usize, events: usize) -> anyhow::Result<()> {
    let token = std::env::var(TOKEN_ENV).with_context(|| format!("{TOKEN_ENV} is not set"))?;
    let (connected, errors) = connect_many(addr, &token, clients, 256, "fan-out clients").await;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {} {}", connected.len(), errors.len())?;
        if let Some(e) = errors.first() {
            writeln!(out, "error {e}")?;
        }
        out.flush()?;
    }
    let (stop, stopped) = watch::channel(false);
    // A plain thread: a blocked read of stdin must not keep the runtime from shutting down.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stop.send(true);
    });
    let mut readers = JoinSet::new();
    for mut c in connected {
        let stopped = stopped.clone();
        readers.spawn(async move {
            let received = c.collect(events, stopped).await;
            (received, c)
        });
    }
    // Report only once every client is done, and disconnect only then: printing and closing
    // while others still wait for an event would delay them.
    let mut done = Vec::with_capacity(clients);
    while let Some(joined) = readers.join_next().await {
        done.push(joined?);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (received, _) in &done {
        for (position, at) in &received.samples {
            writeln!(out, "r {position} {at}")?;
        }
        if received.cut_off {
            writeln!(out, "cut")?;
        }
        if let Some(e) = &received.error {
            writeln!(out, "error {e}")?;
        }
    }
    writeln!(out, "done")?;
    out.flush()?;
    Ok(())
}
