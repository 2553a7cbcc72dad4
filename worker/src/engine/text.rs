//! Deterministic "generation": the text a sequence will produce, decided up front.
//!
//! Token `i` of a sequence is a word of [`VOCABULARY`] picked by hashing the sequence key
//! (engine seed, request seed, model name and prompt fingerprint) with `i`; every token but the
//! first carries a leading space, so the text is the words joined by single spaces.
//!
//! Stop sequences are applied like vLLM does: generation stops at the token that completes a
//! stop string, that token is counted, and the visible text ends right before the stop string
//! (`finish_reason: "stop"`, `stop_reason: <the string>`). Because the whole plan is known
//! before the first token is sent, a stop string spanning several tokens never leaks a prefix
//! into an already-streamed chunk.

use serde::Serialize;

use super::hash::{combine, splitmix64};

/// The words the mock speaks. ASCII only, so every byte index is a char boundary.
pub const VOCABULARY: [&str; 64] = [
    "the", "model", "answers", "with", "a", "short", "and", "clear", "sentence", "about", "data",
    "in", "this", "mock", "engine", "every", "token", "is", "chosen", "from", "fixed", "list",
    "by", "hash", "of", "prompt", "seed", "so", "tests", "can", "predict", "it", "cloud", "gpu",
    "fast", "stream", "request", "reply", "value", "signal", "queue", "cache", "batch", "river",
    "stone", "light", "green", "quiet", "simple", "north", "paper", "window", "garden", "orange",
    "silver", "market", "energy", "future", "people", "system", "number", "little", "world",
    "story",
];

/// Why a sequence ended, as reported by vLLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End of sequence or a stop string.
    Stop,
    /// `max_tokens` (or the context window) reached.
    Length,
    /// The request was abandoned (client gone, engine fault); metrics only.
    Abort,
}

impl FinishReason {
    /// All reasons, in the order vLLM exports them.
    pub const ALL: [FinishReason; 3] = [Self::Stop, Self::Length, Self::Abort];

    /// The wire and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Abort => "abort",
        }
    }
}

/// Everything one sequence will emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SequencePlan {
    /// The visible text of each generated token (clipped at a stop string; may be empty).
    pub pieces: Vec<String>,
    /// How the sequence ends.
    pub finish: FinishReason,
    /// The stop string that ended it, if any.
    pub stop_reason: Option<String>,
}

impl SequencePlan {
    /// Plans `budget` tokens for the sequence `key`; `finish_at_budget` is reported when no stop
    /// string cuts it short.
    pub(crate) fn new(
        key: u64,
        budget: u32,
        finish_at_budget: FinishReason,
        stops: &[String],
    ) -> Self {
        let longest_stop = stops.iter().map(String::len).max().unwrap_or(0);
        let mut text = String::new();
        let mut bounds = Vec::with_capacity(budget as usize);
        for index in 0..budget {
            let start = text.len();
            if index > 0 {
                text.push(' ');
            }
            text.push_str(token_word(key, index));
            bounds.push(start);
            if longest_stop == 0 {
                continue;
            }
            // Any match new to this token ends inside it, so it starts at most
            // `longest_stop - 1` bytes before the token.
            let from = start.saturating_sub(longest_stop - 1);
            let found = stops
                .iter()
                .filter_map(|stop| text[from..].find(stop.as_str()).map(|at| (from + at, stop)))
                .min_by_key(|(at, _)| *at);
            if let Some((visible, stop)) = found {
                return Self {
                    pieces: clip(&text, &bounds, visible),
                    finish: FinishReason::Stop,
                    stop_reason: Some(stop.clone()),
                };
            }
        }
        let end = text.len();
        Self {
            pieces: clip(&text, &bounds, end),
            finish: finish_at_budget,
            stop_reason: None,
        }
    }

    /// Number of generated tokens.
    pub(crate) fn tokens(&self) -> usize {
        self.pieces.len()
    }

    /// The whole visible text.
    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// The word of token `index` of sequence `key`.
fn token_word(key: u64, index: u32) -> &'static str {
    let pick = splitmix64(combine(key, u64::from(index)));
    VOCABULARY[(pick % VOCABULARY.len() as u64) as usize]
}

/// Splits `text` at the token starts `bounds`, dropping everything from `visible` on.
fn clip(text: &str, bounds: &[usize], visible: usize) -> Vec<String> {
    bounds
        .iter()
        .enumerate()
        .map(|(index, start)| {
            let end = bounds.get(index + 1).copied().unwrap_or(text.len());
            let (start, end) = ((*start).min(visible), end.min(visible));
            text[start..end].to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_key_dependent() {
        let a = SequencePlan::new(7, 12, FinishReason::Length, &[]);
        assert_eq!(a, SequencePlan::new(7, 12, FinishReason::Length, &[]));
        assert_ne!(
            a.text(),
            SequencePlan::new(8, 12, FinishReason::Length, &[]).text()
        );
        assert_eq!(a.tokens(), 12);
        assert_eq!(a.text().split(' ').count(), 12);
        assert_eq!(a.finish, FinishReason::Length);
    }

    #[test]
    fn stop_string_cuts_text_and_counts_completing_token() {
        let full = SequencePlan::new(42, 10, FinishReason::Length, &[]);
        let text = full.text();
        let words: Vec<&str> = text.split(' ').collect();
        let stop = format!(" {}", words[4]);
        let expected_visible = &text[..text.find(&stop).unwrap_or(0)];
        let cut = SequencePlan::new(42, 10, FinishReason::Length, std::slice::from_ref(&stop));
        assert_eq!(cut.text(), expected_visible);
        assert_eq!(cut.finish, FinishReason::Stop);
        assert_eq!(cut.stop_reason.as_deref(), Some(stop.as_str()));
        assert!(cut.tokens() <= 5);
    }

    #[test]
    fn stop_spanning_tokens_clips_earlier_pieces() {
        let full = SequencePlan::new(3, 6, FinishReason::Length, &[]);
        let text = full.text();
        // The last letter of token 1 and the space + first letter of token 2.
        let second_end = full.pieces[0].len() + full.pieces[1].len();
        let stop = text[second_end - 1..second_end + 2].to_owned();
        let cut = SequencePlan::new(3, 6, FinishReason::Length, std::slice::from_ref(&stop));
        let visible = &text[..text.find(&stop).unwrap_or(0)];
        assert_eq!(cut.text(), visible);
        assert_eq!(cut.pieces.concat().len(), visible.len());
    }
}
