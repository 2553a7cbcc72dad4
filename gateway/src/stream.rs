//! Streaming pass-through: the engine's server-sent events go to the client as they arrive.
//!
//! Each chunk read from the engine is split on event boundaries (`\n\n`); complete events are
//! forwarded at once, in one write per engine chunk, and an incomplete tail waits for the next
//! chunk. Only the usage chunk (`choices: []` with a `usage` object, asked for by the gateway)
//! is looked into: it is kept for metering and dropped when the client did not ask for it.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// Token counts reported by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What one event of the stream is.
#[derive(Debug, PartialEq)]
pub enum Kind {
    /// `data: [DONE]`.
    Done,
    /// The usage chunk: no choices, the usage.
    Usage(Counts),
    /// Anything else (content, role, finish reason, comments).
    Other,
}

#[derive(Deserialize)]
struct UsageChunk {
    #[serde(default)]
    choices: Vec<serde_json::Value>,
    usage: Option<Counts>,
}

/// Classifies one complete event (ending with the blank line).
pub fn classify(event: &[u8]) -> Kind {
    let Some(data) = event.strip_prefix(b"data:") else {
        return Kind::Other;
    };
    let data = data.trim_ascii();
    if data == b"[DONE]" {
        return Kind::Done;
    }
    // Cheap test first: content chunks carry `"usage":null` or no usage at all.
    let has_usage_object = data
        .windows(8)
        .position(|w| w == b"\"usage\":")
        .is_some_and(|i| data[i + 8..].trim_ascii_start().first() == Some(&b'{'));
    if !has_usage_object {
        return Kind::Other;
    }
    match serde_json::from_slice::<UsageChunk>(data) {
        Ok(UsageChunk {
            choices,
            usage: Some(counts),
        }) if choices.is_empty() => Kind::Usage(counts),
        _ => Kind::Other,
    }
}

/// Splits the engine's bytes into events and decides what reaches the client.
#[derive(Debug, Default)]
pub struct Splitter {
    tail: BytesMut,
    pub keep_usage_chunk: bool,
    pub usage: Option<Counts>,
    pub done: bool,
    /// Content-bearing events forwarded (a token each, for vLLM streams).
    pub chunks: u64,
}

impl Splitter {
    pub fn new(keep_usage_chunk: bool) -> Self {
        Self {
            keep_usage_chunk,
            ..Self::default()
        }
    }

    /// Feeds one chunk from the engine; returns what to send to the client now (possibly
    /// empty).
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.tail.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some(end) = self.tail.windows(2).position(|w| w == b"\n\n") {
            let event = self.tail.split_to(end + 2);
            match classify(&event) {
                Kind::Done => {
                    self.done = true;
                    out.extend_from_slice(&event);
                }
                Kind::Usage(c) => {
                    self.usage = Some(c);
                    if self.keep_usage_chunk {
                        out.extend_from_slice(&event);
                    }
                }
                Kind::Other => {
                    if event.starts_with(b"data:") {
                        self.chunks += 1;
                    }
                    out.extend_from_slice(&event);
                }
            }
        }
        out.freeze()
    }

    /// What is left when the engine's stream ends (an event cut short is forwarded as is).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.tail).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str =
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn the_usage_chunk_is_kept_for_metering_and_dropped_unless_asked_for() {
        for keep in [false, true] {
            let mut s = Splitter::new(keep);
            let all = format!("{CONTENT}{CONTENT}{USAGE}{DONE}");
            // Split at every byte boundary: events cut across engine chunks still come out whole.
            let mut out = Vec::new();
            for b in all.as_bytes().chunks(5) {
                out.extend_from_slice(&s.feed(b));
            }
            out.extend_from_slice(&s.finish());
            let expected = if keep {
                all.clone()
            } else {
                format!("{CONTENT}{CONTENT}{DONE}")
            };
            assert_eq!(String::from_utf8(out).unwrap(), expected);
            assert_eq!(
                s.usage,
                Some(Counts {
                    prompt_tokens: 7,
                    completion_tokens: 3
                })
            );
            assert!(s.done);
            assert_eq!(s.chunks, 2);
        }
    }

    #[test]
    fn events_are_released_as_soon_as_they_are_complete() {
        let mut s = Splitter::new(false);
        assert!(s.feed(&CONTENT.as_bytes()[..20]).is_empty());
        assert_eq!(s.feed(&CONTENT.as_bytes()[20..]), Bytes::from(CONTENT));
        assert_eq!(
            classify(b"data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\n\n"),
            Kind::Other
        );
        assert_eq!(classify(b": keep-alive\n\n"), Kind::Other);
    }
}
