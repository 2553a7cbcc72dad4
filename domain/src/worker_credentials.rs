//! Credentials of the worker agents: the one-time bootstrap token each agent registers with,
//! and the hashes under which worker tokens are recorded.
//!
//! The bootstrap token is **derived**, never stored: `HMAC-SHA256(worker secret,
//! "<instance id>/<install attempt>")` as lowercase hex. The control plane computes it twice:
//! once to hand it to the agent (in its environment, by the bootstrap), once to check what the
//! agent presents. A new install attempt (reinstall) derives a new token, so a token works for
//! one attempt only, and the aggregate accepts one registration per attempt.
//!
//! Worker tokens (issued at registration, random) are recorded as their SHA-256 only.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::instance::InstanceId;

/// The control plane's secret the bootstrap tokens are derived from. `Debug` is redacted.
#[derive(Clone)]
pub struct WorkerSecret(Arc<[u8]>);

impl WorkerSecret {
    /// A secret from its text (as read from `INFERPLANE_WORKER_SECRET(_FILE)`).
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(secret.as_ref()))
    }
}

impl std::fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerSecret(<redacted>)")
    }
}

/// The message the bootstrap token authenticates: `"<instance id>/<attempt>"`.
fn bootstrap_message(id: InstanceId, attempt: u32) -> String {
    format!("{id}/{attempt}")
}

/// The bootstrap token of install attempt `attempt` of instance `id` (64 hex characters).
pub fn bootstrap_token(secret: &WorkerSecret, id: InstanceId, attempt: u32) -> String {
    hex::encode(hmac_sha256(
        &secret.0,
        bootstrap_message(id, attempt).as_bytes(),
    ))
}

/// Whether `presented` is the bootstrap token of that attempt, compared in constant time.
pub fn verify_bootstrap_token(
    secret: &WorkerSecret,
    id: InstanceId,
    attempt: u32,
    presented: &str,
) -> bool {
    let Ok(bytes) = hex::decode(presented.trim()) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).expect("any key length");
    mac.update(bootstrap_message(id, attempt).as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&bytes).is_ok()
}

/// The SHA-256 of a token, lowercase hex: what events and tables hold instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `value` looks like a [`token_hash`]: 64 lowercase hex characters.
pub fn is_token_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_bootstrap_token_is_bound_to_its_instance_and_attempt() {
        let secret = WorkerSecret::new("s3cret");
        let id = InstanceId(Uuid::from_u128(7));
        let token = bootstrap_token(&secret, id, 1);
        assert_eq!(token.len(), 64);
        assert_eq!(token, bootstrap_token(&secret, id, 1), "derived, so stable");
        assert!(verify_bootstrap_token(&secret, id, 1, &token));
        assert!(!verify_bootstrap_token(&secret, id, 2, &token));
        assert!(!verify_bootstrap_token(
            &secret,
            InstanceId(Uuid::from_u128(8)),
            1,
            &token
        ));
        assert!(!verify_bootstrap_token(
            &WorkerSecret::new("other"),
            id,
            1,
            &token
        ));
        assert!(!verify_bootstrap_token(&secret, id, 1, "not hex"));
        assert!(!verify_bootstrap_token(&secret, id, 1, ""));
    }

    #[test]
    fn token_hashes_are_sha256_hex_and_the_secret_is_never_printed() {
        let h = token_hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_token_hash(&h));
        assert!(!is_token_hash("ABC"));
        assert_eq!(
            format!("{:?}", WorkerSecret::new("s3cret")),
            "WorkerSecret(<redacted>)"
        );
    }
}
