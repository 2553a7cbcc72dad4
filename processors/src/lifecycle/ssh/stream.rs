//! The script's output as it arrives: raw byte chunks cut anywhere, turned into phase markers
//! and redacted text, then coalesced into bounded log chunks.
//!
//! Secrets are replaced by [`REDACTED`] before any text leaves this module, including a secret
//! cut across two chunks: a partial line is only let out up to the longest tail that could
//! still become a secret (or a phase marker), which waits for the next bytes.

use inferplane_domain::instance::LogStream;

/// What replaces a secret in the output.
pub const REDACTED: &str = "[REDACTED]";

/// The marker that starts a phase: `::phase::NAME` alone on a stdout line.
pub const MARKER: &str = "::phase::";

/// A partial line longer than this is not a marker, whatever it starts with.
const MAX_MARKER_LINE: usize = 256;

/// Replaces secrets in text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Redacts each non-empty secret of `secrets` (longest first, so a secret containing
    /// another is replaced whole).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` with every occurrence of a secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// Length of the longest tail of `text` that is the beginning of a secret (which the next
    /// bytes may complete).
    fn pending_tail(&self, text: &str) -> usize {
        let mut longest = 0;
        for s in &self.secrets {
            for (start, _) in text.char_indices() {
                let tail = &text[start..];
                if tail.len() <= longest {
                    break;
                }
                if s.len() > tail.len() && s.starts_with(tail) {
                    longest = tail.len();
                    break;
                }
            }
        }
        longest
    }
}

/// A piece of output: a phase marker, or text of one stream (redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Marker(String),
    Text(LogStream, String),
}

/// Cuts one output stream into markers (stdout only) and redacted text.
pub struct LineSplitter {
    stream: LogStream,
    pending: Vec<u8>,
    redactor: Redactor,
}

impl LineSplitter {
    pub fn new(stream: LogStream, redactor: Redactor) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            redactor,
        }
    }

    /// Takes in `bytes`; returns what complete lines they end.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Output> {
        self.pending.extend_from_slice(bytes);
        let Some(last_newline) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let lines: Vec<u8> = self.pending.drain(..=last_newline).collect();
        let mut out = Vec::new();
        let mut text = String::new();
        for line in String::from_utf8_lossy(&lines).split_inclusive('\n') {
            match self.marker(line) {
                Some(name) => {
                    if !text.is_empty() {
                        out.push(Output::Text(self.stream, std::mem::take(&mut text)));
                    }
                    out.push(Output::Marker(name));
                }
                None => text.push_str(&self.redactor.redact(line)),
            }
        }
        if !text.is_empty() {
            out.push(Output::Text(self.stream, text));
        }
        out
    }

    /// The part of an unfinished line that can go out now (the UI sees progress without a
    /// newline): all of it but an incomplete character, a tail that may become a secret, or
    /// what may become a marker.
    pub fn flush_partial(&mut self) -> Option<Output> {
        if self.pending.is_empty() {
            return None;
        }
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let (head, incomplete) = self.pending.split_at(valid);
        let head = String::from_utf8_lossy(head).into_owned();
        if self.stream == LogStream::Stdout
            && head.len() < MAX_MARKER_LINE
            && (head.starts_with(MARKER) || MARKER.starts_with(head.as_str()))
        {
            return None;
        }
        let redacted = self.redactor.redact(&head);
        let keep = self.redactor.pending_tail(&redacted);
        let (emit, hold) = redacted.split_at(redacted.len() - keep);
        let mut rest = hold.as_bytes().to_vec();
        rest.extend_from_slice(incomplete);
        let emit = emit.to_string();
        self.pending = rest;
        (!emit.is_empty()).then_some(Output::Text(self.stream, emit))
    }

    /// Everything left, at the end of the output.
    pub fn finish(&mut self) -> Vec<Output> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.pending);
        let line = String::from_utf8_lossy(&rest).into_owned();
        match self.marker(&line) {
            Some(name) => vec![Output::Marker(name)],
            None => vec![Output::Text(self.stream, self.redactor.redact(&line))],
        }
    }

    fn marker(&self, line: &str) -> Option<String> {
        if self.stream != LogStream::Stdout {
            return None;
        }
        let name = line.trim_end_matches(['\n', '\r']).strip_prefix(MARKER)?;
        Some(self.redactor.redact(name.trim()))
    }
}

/// Log text of the current phase waiting to be recorded, per stream.
#[derive(Default)]
pub struct LogBuffer {
    stdout: String,
    stderr: String,
}

impl LogBuffer {
    /// Adds `text`; returns the chunks that reached `limit` bytes and must go out now.
    pub fn add(&mut self, stream: LogStream, text: &str, limit: usize) -> Vec<(LogStream, String)> {
        let buf = match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        buf.push_str(text);
        let mut out = Vec::new();
        while buf.len() >= limit {
            let mut end = limit;
            while !buf.is_char_boundary(end) {
                end -= 1;
            }
            let rest = buf.split_off(end);
            out.push((stream, std::mem::replace(buf, rest)));
        }
        out
    }

    /// Everything buffered, stdout first.
    pub fn drain(&mut self) -> Vec<(LogStream, String)> {
        let mut out = Vec::new();
        if !self.stdout.is_empty() {
            out.push((LogStream::Stdout, std::mem::take(&mut self.stdout)));
        }
        if !self.stderr.is_empty() {
            out.push((LogStream::Stderr, std::mem::take(&mut self.stderr)));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "hf_SecretToken123";

    fn splitter(stream: LogStream) -> LineSplitter {
        LineSplitter::new(stream, Redactor::new([TOKEN.to_string()]))
    }

    fn text(outputs: &[Output]) -> String {
        outputs
            .iter()
            .map(|o| match o {
                Output::Text(_, t) => t.clone(),
                Output::Marker(m) => format!("<{m}>"),
            })
            .collect()
    }

    #[test]
    fn markers_split_the_text_and_only_on_stdout() {
        let mut s = splitter(LogStream::Stdout);
        let out = s.push(b"::phase::start\nhello\n::phase::done\r\nbye\n");
        assert_eq!(
            out,
            vec![
                Output::Marker("start".into()),
                Output::Text(LogStream::Stdout, "hello\n".into()),
                Output::Marker("done".into()),
                Output::Text(LogStream::Stdout, "bye\n".into()),
            ]
        );
        let mut e = splitter(LogStream::Stderr);
        assert_eq!(text(&e.push(b"::phase::start\n")), "::phase::start\n");
    }

    #[test]
    fn a_secret_cut_across_chunks_at_every_position_never_leaks() {
        let line = format!("token is {TOKEN} ok\n");
        for cut in 0..line.len() {
            for flush in [false, true] {
                let mut s = splitter(LogStream::Stdout);
                let mut out = s.push(&line.as_bytes()[..cut]);
                if flush {
                    out.extend(s.flush_partial());
                }
                out.extend(s.push(&line.as_bytes()[cut..]));
                out.extend(s.finish());
                let all = text(&out);
                assert_eq!(
                    all, "token is [REDACTED] ok\n",
                    "cut at {cut}, flush {flush}"
                );
                for o in &out {
                    if let Output::Text(_, t) = o {
                        assert!(!t.contains("hf_Secret"), "{t:?} at cut {cut}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_partial_line_goes_out_early_except_what_may_be_a_secret_or_a_marker() {
        let mut s = splitter(LogStream::Stdout);
        assert!(s.push(b"pulling 10% hf_Sec").is_empty());
        assert_eq!(
            s.flush_partial(),
            Some(Output::Text(LogStream::Stdout, "pulling 10% ".into()))
        );
        assert_eq!(s.flush_partial(), None, "the possible secret waits");
        assert_eq!(text(&s.push(b"ond\n")), "hf_Second\n");
        assert!(s.push(b"::pha").is_empty());
        assert_eq!(s.flush_partial(), None, "a marker in the making waits");
        assert_eq!(s.push(b"se::done\n"), vec![Output::Marker("done".into())]);
    }

    #[test]
    fn characters_cut_across_chunks_stay_whole() {
        let mut s = splitter(LogStream::Stderr);
        let bytes = "é\n".as_bytes();
        assert!(s.push(&bytes[..1]).is_empty());
        assert_eq!(s.flush_partial(), None);
        assert_eq!(text(&s.push(&bytes[1..])), "é\n");
    }

    #[test]
    fn a_secret_overlapping_itself_is_redacted_whole() {
        let r = Redactor::new(["ABAB".to_string()]);
        let mut s = LineSplitter::new(LogStream::Stdout, r);
        assert!(s.push(b"xABAB").is_empty());
        let out = s.flush_partial();
        assert_eq!(
            out,
            Some(Output::Text(LogStream::Stdout, "x[REDACTED]".into()))
        );
    }

    #[test]
    fn the_log_buffer_cuts_at_its_limit_on_character_boundaries() {
        let mut b = LogBuffer::default();
        assert!(b.add(LogStream::Stdout, "abc", 4).is_empty());
        assert_eq!(
            b.add(LogStream::Stdout, "déf", 4),
            vec![(LogStream::Stdout, "abcd".into())]
        );
        b.add(LogStream::Stderr, "e", 4);
        assert_eq!(
            b.drain(),
            vec![
                (LogStream::Stdout, "éf".into()),
                (LogStream::Stderr, "e".into())
            ]
        );
        assert!(b.is_empty());
    }
}
