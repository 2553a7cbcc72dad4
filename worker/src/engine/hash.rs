//! Stable, platform-independent hashing.
//!
//! Everything the engine derives from a request (token text, prompt token ids, embedding
//! vectors, prefix-cache blocks, fault sampling) goes through these functions, so outputs are
//! identical across runs, machines and Rust versions (unlike `std`'s `DefaultHasher`).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over bytes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// SplitMix64 finaliser: a cheap bijective mixer with good avalanche.
pub(crate) fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Chains `value` into `state`; order-sensitive.
pub(crate) fn combine(state: u64, value: u64) -> u64 {
    splitmix64(state.rotate_left(17) ^ value.wrapping_mul(0x2545_f491_4f6c_dd1d))
}

/// A uniform draw in `[0, 1)` from a hash.
pub(crate) fn unit_interval(hash: u64) -> f64 {
    // 53 high bits make an exactly representable double.
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn combine_is_order_sensitive() {
        assert_ne!(combine(combine(1, 2), 3), combine(combine(1, 3), 2));
    }

    #[test]
    fn unit_interval_stays_in_range() {
        for value in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
            let draw = unit_interval(value);
            assert!((0.0..1.0).contains(&draw), "{draw}");
        }
    }
}
