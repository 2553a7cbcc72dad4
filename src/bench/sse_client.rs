//! A minimal SSE client over plain HTTP/1.1: one socket, one small buffer, no pool, so that
//! ten thousand of them fit in one process. Parses chunked transfer encoding and SSE frames
//! (`id:`/`event:`/`data:` lines, a blank line ends a frame; `:` lines are keep-alives).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::stats::now_ns;

pub struct SseClient {
    stream: TcpStream,
    /// Bytes read and not yet decoded (chunk framing included).
    raw: Vec<u8>,
    /// Decoded body not yet split into frames.
    body: Vec<u8>,
    chunked: bool,
    ended: bool,
}

/// One SSE frame; its data is not kept.
#[derive(Debug)]
pub struct Frame {
    pub id: Option<i64>,
    pub event: String,
}

/// What a client received before it stopped.
#[derive(Debug, Default)]
pub struct Received {
    /// (position, wall-clock receipt time in ns) of every event.
    pub samples: Vec<(i64, i64)>,
    /// The server cut the client off (`reconnect` event).
    pub cut_off: bool,
    pub error: Option<String>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl SseClient {
    /// Opens `GET /api/events/stream` and waits for a 200 response's headers.
    pub async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let open = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let request = format!(
                "GET /api/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::with_capacity(1024);
            let head_end = loop {
                if let Some(i) = find(&raw, b"\r\n\r\n") {
                    break i;
                }
                anyhow::ensure!(raw.len() < 16 * 1024, "response head too large");
                raw.reserve(1024);
                anyhow::ensure!(
                    stream.read_buf(&mut raw).await? > 0,
                    "closed before the response"
                );
            };
            let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
            let status = head.lines().next().unwrap_or_default().to_owned();
            anyhow::ensure!(
                status.split(' ').nth(1) == Some("200"),
                "response {status:?}"
            );
            let chunked = head.contains("transfer-encoding: chunked");
            raw.drain(..head_end + 4);
            Ok(Self {
                stream,
                raw,
                body: Vec::new(),
                chunked,
                ended: false,
            })
        };
        tokio::time::timeout(Duration::from_secs(60), open)
            .await
            .context("timed out connecting")?
    }

    /// The next frame that carries an id or an event name; `None` when the stream ended.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            while let Some(end) = find(&self.body, b"\n\n") {
                let frame = parse_frame(&self.body[..end]);
                self.body.drain(..end + 2);
                if frame.id.is_some() || !frame.event.is_empty() {
                    return Ok(Some(frame));
                }
            }
            if self.ended {
                return Ok(None);
            }
            if self.raw.capacity() - self.raw.len() < 512 {
                self.raw.reserve(2048);
            }
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                self.ended = true;
            }
            self.decode()?;
        }
    }

    /// Moves complete chunks (or everything, without chunked encoding) from `raw` to `body`.
    fn decode(&mut self) -> anyhow::Result<()> {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return Ok(());
        }
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let line = std::str::from_utf8(&self.raw[..line_end])?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                self.ended = true;
                return Ok(());
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                break;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
        Ok(())
    }

    /// Reads until `expected` events arrived, the stream ends, or `stop` turns true. The
    /// connection stays open: callers drop clients only once every client is done, so that
    /// early finishers do not load the server while others still wait.
    pub async fn collect(&mut self, expected: usize, mut stop: watch::Receiver<bool>) -> Received {
        let mut r = Received::default();
        while r.samples.len() < expected && !*stop.borrow() {
            let frame = tokio::select! {
                f = self.next_frame() => f,
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break,
                },
            };
            match frame {
                Ok(Some(f)) if f.event == "reconnect" => {
                    r.cut_off = true;
                    break;
                }
                Ok(Some(f)) => {
                    let at = now_ns();
                    if let Some(id) = f.id {
                        r.samples.push((id, at));
                    }
                }
                Ok(None) => {
                    r.error = Some("the stream ended".into());
                    break;
                }
                Err(e) => {
                    r.error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        r
    }
}

fn parse_frame(bytes: &[u8]) -> Frame {
    let mut frame = Frame {
        id: None,
        event: String::new(),
    };
    for line in String::from_utf8_lossy(bytes).lines() {
        if let Some(v) = line.strip_prefix("id:") {
            frame.id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            frame.event = v.trim().to_owned();
        }
    }
    frame
}

/// Connects `n` clients, `parallel` at a time; returns the connected ones and the errors.
pub async fn connect_many(
    addr: SocketAddr,
    token: &str,
    n: usize,
    parallel: usize,
    label: &str,
) -> (Vec<SseClient>, Vec<String>) {
    let mut attempts = futures::stream::iter(0..n)
        .map(|_| SseClient::connect(addr, token))
        .buffer_unordered(parallel);
    let (mut clients, mut errors) = (Vec::with_capacity(n), Vec::new());
    let mut last_report = std::time::Instant::now();
    while let Some(attempt) = attempts.next().await {
        match attempt {
            Ok(c) => clients.push(c),
            Err(e) => errors.push(format!("{e:#}")),
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = std::time::Instant::now();
            eprintln!("{label}: {}/{n} clients connected", clients.len());
        }
    }
    (clients, errors)
}
