//! Simulated tokenisation of prompts.
//!
//! The mock has no real tokenizer. A prompt becomes a sequence of token ids where every
//! whitespace-separated word is one token, so counts are easy to predict in tests:
//!
//! - a completion prompt given as text: one token per word;
//! - a completion or embedding prompt given as token ids: those ids, one token each;
//! - a chat conversation follows a ChatML-like template: per message `<|im_start|>`, the role,
//!   the words of the content, `<|im_end|>` and a newline (4 tokens + words), then
//!   `<|im_start|>assistant\n` (3 tokens) to open the answer.
//!
//! The ids feed the prompt fingerprint (which seeds the generated text) and the simulated
//! prefix cache (which hashes fixed-size blocks of ids, as vLLM does).

use super::hash::{combine, fnv1a};

/// Template tokens around every chat message.
pub const CHAT_TOKENS_PER_MESSAGE: usize = 4;
/// Template tokens that open the assistant's answer.
pub const CHAT_GENERATION_PROMPT_TOKENS: usize = 3;

/// One message of a chat prompt, reduced to what tokenisation needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatTurn<'a> {
    pub role: &'a str,
    pub text: &'a str,
}

/// A tokenised prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    ids: Vec<u64>,
}

fn word_id(word: &str) -> u64 {
    fnv1a(word.as_bytes())
}

impl Prompt {
    /// Words of a plain-text prompt.
    pub(crate) fn from_text(text: &str) -> Self {
        Self {
            ids: text.split_whitespace().map(word_id).collect(),
        }
    }

    /// Token ids given by the client.
    pub(crate) fn from_token_ids(ids: &[u32]) -> Self {
        Self {
            ids: ids.iter().map(|id| u64::from(*id)).collect(),
        }
    }

    /// A chat conversation rendered through the template described in the module docs.
    pub(crate) fn from_chat(turns: &[ChatTurn<'_>]) -> Self {
        let start = word_id("<|im_start|>");
        let end = word_id("<|im_end|>");
        let newline = word_id("\n");
        let mut ids = Vec::new();
        for turn in turns {
            ids.push(start);
            ids.push(word_id(turn.role));
            ids.extend(turn.text.split_whitespace().map(word_id));
            ids.push(end);
            ids.push(newline);
        }
        ids.extend([start, word_id("assistant"), newline]);
        Self { ids }
    }

    /// Number of prompt tokens.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The token ids.
    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// A hash of the whole prompt, order-sensitive.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.ids
            .iter()
            .fold(self.ids.len() as u64, |state, id| combine(state, *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_prompt_counts_words() {
        assert_eq!(Prompt::from_text("  hello   big\nworld ").len(), 3);
        assert_eq!(Prompt::from_text("").len(), 0);
    }

    #[test]
    fn chat_prompt_follows_the_template_arithmetic() {
        let turns = [
            ChatTurn {
                role: "system",
                text: "be brief",
            },
            ChatTurn {
                role: "user",
                text: "say hello to me",
            },
        ];
        let expected = 2 * CHAT_TOKENS_PER_MESSAGE + 2 + 4 + CHAT_GENERATION_PROMPT_TOKENS;
        assert_eq!(Prompt::from_chat(&turns).len(), expected);
    }

    #[test]
    fn fingerprint_depends_on_order_and_content() {
        let a = Prompt::from_text("one two");
        let b = Prompt::from_text("two one");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), Prompt::from_text("one  two").fingerprint());
    }
}
