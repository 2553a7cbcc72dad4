//! A simulated automatic prefix cache, so `vllm:prefix_cache_hits` and
//! `usage.prompt_tokens_details.cached_tokens` move like vLLM's when prompts share a prefix.
//!
//! As in vLLM, a prompt is cut into full blocks of [`BLOCK_TOKENS`] token ids; block `i` is
//! identified by a hash chained over blocks `0..=i`, so a block only hits when the whole prefix
//! before it matches. Hits count the leading cached blocks, capped so the last prompt token is
//! always computed. Blocks are evicted first-in first-out once the cache holds its capacity.

use std::collections::{HashSet, VecDeque};

use super::hash::combine;

/// Tokens per cache block (vLLM's default block size).
pub const BLOCK_TOKENS: usize = 16;

/// Upper bound of blocks remembered, whatever the configured KV capacity.
const MAX_BLOCKS: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct PrefixCache {
    blocks: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl PrefixCache {
    /// A cache holding the blocks of `kv_cache_tokens` tokens (allocated lazily).
    pub(crate) fn new(kv_cache_tokens: u64) -> Self {
        let blocks = (kv_cache_tokens / BLOCK_TOKENS as u64).max(1);
        Self {
            blocks: HashSet::new(),
            order: VecDeque::new(),
            capacity: usize::try_from(blocks)
                .unwrap_or(MAX_BLOCKS)
                .min(MAX_BLOCKS),
        }
    }

    /// Looks the prompt up, remembers its blocks, and returns the cached prompt tokens.
    pub(crate) fn query(&mut self, ids: &[u64]) -> u64 {
        let mut chain = 0u64;
        let mut leading_hits = 0usize;
        let mut still_matching = true;
        for block in ids.chunks_exact(BLOCK_TOKENS) {
            chain = block.iter().fold(chain, |state, id| combine(state, *id));
            if still_matching && self.blocks.contains(&chain) {
                leading_hits += 1;
            } else {
                still_matching = false;
                self.insert(chain);
            }
        }
        let computable = ids.len().saturating_sub(1) / BLOCK_TOKENS * BLOCK_TOKENS;
        (leading_hits * BLOCK_TOKENS).min(computable) as u64
    }

    fn insert(&mut self, block: u64) {
        if !self.blocks.insert(block) {
            return;
        }
        self.order.push_back(block);
        while self.order.len() > self.capacity {
            if let Some(evicted) = self.order.pop_front() {
                self.blocks.remove(&evicted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u64>) -> Vec<u64> {
        range.collect()
    }

    #[test]
    fn shared_prefix_hits_whole_blocks() {
        let mut cache = PrefixCache::new(1 << 16);
        assert_eq!(cache.query(&ids(0..40)), 0);
        // Same first 32 tokens, different tail.
        let mut other = ids(0..32);
        other.extend(100..110);
        assert_eq!(cache.query(&other), 32);
        // Identical prompt of exactly two blocks: the last token is always computed.
        assert_eq!(cache.query(&ids(0..32)), 16);
    }

    #[test]
    fn capacity_evicts_oldest_blocks() {
        let mut cache = PrefixCache::new(BLOCK_TOKENS as u64);
        cache.query(&ids(0..17));
        cache.query(&ids(500..517));
        assert_eq!(cache.query(&ids(0..17)), 0);
    }
}
