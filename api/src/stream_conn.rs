//! The live stream on a connection of its own, without hyper.
//!
//! Thousands of idle stream clients are normal for an operator console, and hyper keeps a read
//! and a write buffer for the life of a connection. A connection that opens with
//! `GET /api/events/stream` is therefore served here: the request head is read into a small
//! buffer that is dropped before streaming, then frames are written as they come. Everything
//! else about the stream (validation, replay, live hand-over, cut-off) is shared with the axum
//! route through [`crate::routes::events::open`].

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::AppState;
use crate::error::ApiError;
use crate::routes::events::{EventQuery, Frame, open};

const PREFIX: &[u8] = b"GET /api/events/stream";
const MAX_HEAD: usize = 16 * 1024;
const ROUTE: &str = "/api/events/stream";

/// What a new connection starts with.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// `GET /api/events/stream`: serve it with [`serve`].
    Stream,
    /// Anything else: hyper serves it.
    Other,
    /// Nothing arrived within 30 s (as hyper's header timeout): close it.
    Silent,
}

/// Looks at the connection's first bytes without consuming them.
pub async fn opening(tcp: &TcpStream) -> Opening {
    match tokio::time::timeout(Duration::from_secs(30), opens_with_stream(tcp)).await {
        Ok(true) => Opening::Stream,
        Ok(false) => Opening::Other,
        Err(_) => Opening::Silent,
    }
}

/// True when the connection's first request is a live-stream request; gives up (and lets
/// hyper serve the connection) if the prefix is slow to come after its first bytes.
async fn opens_with_stream(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; PREFIX.len() + 1];
    for _ in 0..50 {
        let n = match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let seen = n.min(PREFIX.len());
        if buf[..seen] != PREFIX[..seen] {
            return false;
        }
        if n > PREFIX.len() {
            return matches!(buf[PREFIX.len()], b' ' | b'?');
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

struct Head {
    query: String,
    http10: bool,
    authorization: Option<String>,
    last_event_id: Option<Vec<u8>>,
    request_id: String,
}

/// Reads and parses the request head; None when the client went away or sent garbage.
async fn read_head<S: AsyncRead + Unpin>(tcp: &mut S) -> Option<Head> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() >= MAX_HEAD || Instant::now() > deadline {
            return None;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline.into(), tcp.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).ok()?;
    let path = req.path?;
    let query = path.split_once('?').map_or("", |(_, q)| q).to_string();
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    Some(Head {
        query,
        http10: req.version == Some(0),
        authorization: header("authorization").and_then(|v| String::from_utf8(v.to_vec()).ok()),
        last_event_id: header("last-event-id").map(<[u8]>::to_vec),
        request_id: header("x-request-id")
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
    })
}

/// Serves one connection whose first request is `GET /api/events/stream`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut tcp: S, state: AppState) {
    let started = Instant::now();
    let Some(head) = read_head(&mut tcp).await else {
        return;
    };
    let span =
        tracing::info_span!("http", method = "GET", route = ROUTE, request_id = %head.request_id);
    let status = tracing::Instrument::instrument(stream(&mut tcp, &state, head), span).await;
    metrics::counter!("inferplane_http_requests_total", "method" => "GET", "route" => ROUTE, "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("inferplane_http_request_duration_seconds", "method" => "GET", "route" => ROUTE)
        .record(started.elapsed().as_secs_f64());
}

async fn stream<S: AsyncWrite + Unpin>(tcp: &mut S, state: &AppState, head: Head) -> StatusCode {
    let authorized = head
        .authorization
        .as_deref()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| state.operator_token.verify(token.trim()));
    if !authorized {
        tracing::info!(path = ROUTE, "refused: missing or wrong operator token");
        return refuse(tcp, ApiError::unauthorized(), &head.request_id).await;
    }
    let query = match serde_urlencoded::from_str::<EventQuery>(&head.query) {
        Ok(q) => q,
        Err(e) => {
            let e = ApiError::invalid_field(
                "query",
                format!("Failed to deserialize query string: {e}"),
            );
            return refuse(tcp, e, &head.request_id).await;
        }
    };
    let frames = match open(state, query, head.last_event_id.as_deref()).await {
        Ok(f) => f,
        Err(e) => return refuse(tcp, e, &head.request_id).await,
    };
    tracing::info!(status = 200, "stream opened");
    let chunked = !head.http10;
    let response_head = format!(
        "HTTP/1.{} 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-request-id: {}\r\n{}\r\n",
        if head.http10 { 0 } else { 1 },
        head.request_id,
        if chunked {
            "transfer-encoding: chunked\r\n"
        } else {
            "connection: close\r\n"
        },
    );
    if tcp.write_all(response_head.as_bytes()).await.is_err() {
        return StatusCode::OK;
    }
    drop(head);
    let mut frames = std::pin::pin!(frames);
    let mut keep_alive = tokio::time::interval(state.settings.sse_keep_alive);
    keep_alive.tick().await;
    loop {
        let text = tokio::select! {
            f = frames.next() => match f {
                Some(Frame::Event { id, event_type, json }) => format!("id: {id}\nevent: {event_type}\ndata: {json}\n\n"),
                Some(Frame::Reconnect(json)) => format!("event: reconnect\ndata: {json}\n\n"),
                None => break,
            },
            _ = keep_alive.tick() => ":\n\n".to_string(),
        };
        let sent = if chunked {
            let framed = format!("{:x}\r\n{text}\r\n", text.len());
            tcp.write_all(framed.as_bytes()).await
        } else {
            tcp.write_all(text.as_bytes()).await
        };
        // The client went away, or took nothing for the write timeout: the stream (and its
        // hub subscription) is dropped with us.
        if let Err(e) = sent {
            if crate::write_deadline::is_write_stalled(&e) {
                tracing::info!(error = %e, "stream client stopped reading: connection closed");
            }
            return StatusCode::OK;
        }
    }
    if chunked {
        let _ = tcp.write_all(b"0\r\n\r\n").await;
    }
    let _ = tcp.shutdown().await;
    StatusCode::OK
}

/// Answers with the problem JSON an axum route would have sent, then closes.
async fn refuse<S: AsyncWrite + Unpin>(
    tcp: &mut S,
    error: ApiError,
    request_id: &str,
) -> StatusCode {
    let mut response = error.into_response();
    let status = response.status();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let _ = tcp.write_all(head.as_bytes()).await;
    let _ = tcp.write_all(&body).await;
    let _ = tcp.shutdown().await;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// The server side of a loopback connection whose client wrote `parts` in turn.
    async fn opening_of(parts: &[&[u8]]) -> Opening {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for part in parts {
                client.write_all(&part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            client
        });
        let opening = opening(&server).await;
        drop(writer.await.unwrap());
        opening
    }

    #[tokio::test]
    async fn a_connection_opening_with_the_stream_request_is_recognised() {
        for request in [
            &b"GET /api/events/stream HTTP/1.1\r\n"[..],
            b"GET /api/events/stream?after=0 HTTP/1.0\r\n",
        ] {
            assert_eq!(opening_of(&[request]).await, Opening::Stream);
        }
        // The prefix split across two writes.
        assert_eq!(
            opening_of(&[b"GET /api/ev", b"ents/stream HTTP/1.1\r\n"]).await,
            Opening::Stream
        );
    }

    #[tokio::test]
    async fn other_requests_are_left_to_the_router() {
        for request in [
            &b"GET /api/events HTTP/1.1\r\n"[..],
            b"GET /api/events/streams HTTP/1.1\r\n",
            b"HEAD /api/events/stream HTTP/1.1\r\n",
            b"POST /api/models HTTP/1.1\r\n",
        ] {
            assert_eq!(opening_of(&[request]).await, Opening::Other);
        }
    }
}
