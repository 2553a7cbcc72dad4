//! The phases of one run as the sink sees them: started, logged (coalesced, bounded, redacted),
//! completed or failed, each with its duration.

use std::time::{Duration, Instant};

use inferplane_domain::instance::{LogStream, is_install_phase};

use super::stream::{LogBuffer, Redactor};
use crate::lifecycle::installer::{InstallError, PhaseSink};

/// Tracks the running phase and its pending output.
pub struct PhaseRun<'a> {
    sink: &'a dyn PhaseSink,
    redactor: Redactor,
    current: Option<(String, Instant)>,
    buffer: LogBuffer,
    last_flush: Instant,
    chunk_bytes: usize,
    /// The last line written on stderr, quoted in a failure message.
    last_stderr: String,
}

impl<'a> PhaseRun<'a> {
    pub fn new(sink: &'a dyn PhaseSink, redactor: Redactor, chunk_bytes: usize) -> Self {
        Self {
            sink,
            redactor,
            current: None,
            buffer: LogBuffer::default(),
            last_flush: Instant::now(),
            chunk_bytes: chunk_bytes.max(64),
            last_stderr: String::new(),
        }
    }

    /// The running phase's name.
    pub fn current(&self) -> Option<&str> {
        self.current.as_ref().map(|(n, _)| n.as_str())
    }

    /// How long the running phase has run.
    pub fn elapsed(&self) -> Duration {
        self.current
            .as_ref()
            .map(|(_, t)| t.elapsed())
            .unwrap_or_default()
    }

    /// Phase `name` begins (the script announced it): the running one completes. The same
    /// name again is the same phase (the installer starts `start` before the script does).
    pub async fn enter(&mut self, name: &str) -> Result<(), InstallError> {
        if self.current() == Some(name) {
            return Ok(());
        }
        if !is_install_phase(name) {
            let message = format!("the script announced an unknown phase {name:?}");
            return Err(self.fail(None, &message).await);
        }
        if self.current.is_some() {
            self.complete(0).await?;
        }
        self.sink.started(name).await?;
        self.current = Some((name.to_string(), Instant::now()));
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Output of the running phase (already redacted by the splitter, redacted again here for
    /// text the installer writes itself).
    pub async fn text(&mut self, stream: LogStream, text: &str) -> Result<(), InstallError> {
        let text = self.redactor.redact(text);
        if stream == LogStream::Stderr
            && let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty())
        {
            self.last_stderr = line.trim().chars().take(500).collect();
        }
        for (s, chunk) in self.buffer.add(stream, &text, self.chunk_bytes) {
            self.send(s, &chunk).await?;
        }
        Ok(())
    }

    /// Records what is buffered when `interval` passed since the last time (or `force`).
    pub async fn flush(&mut self, interval: Duration, force: bool) -> Result<(), InstallError> {
        if self.buffer.is_empty() || !(force || self.last_flush.elapsed() >= interval) {
            return Ok(());
        }
        for (s, chunk) in self.buffer.drain() {
            self.send(s, &chunk).await?;
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    async fn send(&mut self, stream: LogStream, chunk: &str) -> Result<(), InstallError> {
        if let Some((name, _)) = &self.current {
            self.sink.logged(name, stream, chunk).await?;
        }
        Ok(())
    }

    /// The running phase completed with `exit_code`.
    pub async fn complete(&mut self, exit_code: i32) -> Result<(), InstallError> {
        self.flush(Duration::ZERO, true).await?;
        if let Some((name, started)) = self.current.take() {
            let ms = started.elapsed().as_millis() as u64;
            self.sink.completed(&name, ms, exit_code).await?;
        }
        Ok(())
    }

    /// The running phase failed: recorded with `message` (redacted), and returned as the
    /// install's error. A failure to record wins (the bootstrap is then retried).
    pub async fn fail(&mut self, exit_code: Option<i32>, message: &str) -> InstallError {
        let message = self.redactor.redact(message);
        if let Err(e) = self.flush(Duration::ZERO, true).await {
            return e;
        }
        let (name, started) = self
            .current
            .take()
            .unwrap_or_else(|| ("start".to_string(), Instant::now()));
        let ms = started.elapsed().as_millis() as u64;
        if let Err(e) = self.sink.failed(&name, ms, exit_code, &message).await {
            return InstallError::Record(e);
        }
        InstallError::PhaseFailed {
            phase: name,
            message,
        }
    }

    /// The last stderr line, for a failure message (`: line`), or nothing.
    pub fn stderr_hint(&self) -> String {
        if self.last_stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", self.last_stderr)
        }
    }
}
