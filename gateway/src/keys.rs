//! The in-memory key table: every API key, kept current from the event stream, so checking a
//! key on `/v1` never touches the database.
//!
//! The table is indexed by the key's display prefix (not secret). A presented key is hashed
//! once (SHA-256) and compared in constant time with each credential under its prefix: the
//! current secret of a key, and the secret a rotation replaced while its grace period runs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::api_key::{ApiKey, ApiKeyEvent, KeyLimits, prefix_of};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A key as the gateway needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    /// The current display prefix (metrics, logs, usage).
    pub prefix: String,
    pub limits: KeyLimits,
}

impl KeyInfo {
    pub fn allows_model(&self, model: &str) -> bool {
        self.limits
            .models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

#[derive(Debug, Clone)]
struct Credential {
    key_id: Uuid,
    hash: [u8; 32],
    valid_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Table {
    aggregates: HashMap<Uuid, ApiKey>,
    /// The sequence of the last event applied, per key.
    versions: HashMap<Uuid, i64>,
    infos: HashMap<Uuid, Arc<KeyInfo>>,
    by_prefix: HashMap<String, Vec<Credential>>,
}

/// Why a presented key was refused. The client is told only "invalid" or "expired".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Malformed,
    Unknown,
    Expired,
}

#[derive(Clone, Default)]
pub struct KeyTable {
    inner: Arc<RwLock<Table>>,
}

fn decode_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_hash).ok()?;
    bytes.try_into().ok()
}

impl KeyTable {
    /// Applies event number `sequence` of key `id`.
    pub fn apply(&self, id: Uuid, sequence: i64, event: ApiKeyEvent) {
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        t.versions.insert(id, sequence);
        let aggregate = t.aggregates.entry(id).or_default();
        aggregate.apply(event);
        let state = aggregate.state.clone();
        // Re-index this key's credentials from its new state.
        for creds in t.by_prefix.values_mut() {
            creds.retain(|c| c.key_id != id);
        }
        t.by_prefix.retain(|_, v| !v.is_empty());
        let Some(s) = state else {
            t.infos.remove(&id);
            return;
        };
        if s.revoked {
            t.infos.remove(&id);
            return;
        }
        let mut creds = vec![(s.secret.clone(), None)];
        if let Some((prev, until)) = &s.previous {
            creds.push((prev.clone(), Some(*until)));
        }
        for (secret, valid_until) in creds {
            if let Some(hash) = decode_hash(&secret.key_hash) {
                t.by_prefix
                    .entry(secret.prefix)
                    .or_default()
                    .push(Credential {
                        key_id: id,
                        hash,
                        valid_until,
                    });
            }
        }
        t.infos.insert(
            id,
            Arc::new(KeyInfo {
                id,
                name: s.name,
                prefix: s.secret.prefix,
                limits: s.limits,
            }),
        );
    }

    /// Checks a presented key at `now`.
    pub fn authenticate(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<KeyInfo>, KeyRefusal> {
        let prefix = prefix_of(presented).ok_or(KeyRefusal::Malformed)?;
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let creds = t.by_prefix.get(prefix).ok_or(KeyRefusal::Unknown)?;
        // Compare against every credential under the prefix, without stopping early.
        let mut found: Option<&Credential> = None;
        for c in creds {
            if bool::from(c.hash.ct_eq(&hash)) {
                found = Some(c);
            }
        }
        let c = found.ok_or(KeyRefusal::Unknown)?;
        if c.valid_until.is_some_and(|until| now >= until) {
            return Err(KeyRefusal::Expired);
        }
        let info = t.infos.get(&c.key_id).ok_or(KeyRefusal::Unknown)?;
        if info.limits.expires_at.is_some_and(|at| now >= at) {
            return Err(KeyRefusal::Expired);
        }
        Ok(info.clone())
    }

    /// The sequence of the last event of key `id` this table applied (0: none).
    pub fn version_of(&self, id: Uuid) -> i64 {
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        t.versions.get(&id).copied().unwrap_or(0)
    }

    /// Forgets everything (before a reload).
    pub fn clear(&self) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Table::default();
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .infos
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use inferplane_domain::api_key::KeySecret;

    use super::*;

    fn secret(key: &str) -> KeySecret {
        KeySecret {
            prefix: prefix_of(key).unwrap().to_string(),
            key_hash: hex::encode(Sha256::digest(key.as_bytes())),
        }
    }

    fn key(c: char) -> String {
        format!("sk-ip-{}", c.to_string().repeat(64))
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_its_grace_period_then_revocation_ends_both() {
        let table = KeyTable::default();
        let id = Uuid::now_v7();
        let (old, new) = (key('a'), key('b'));
        table.apply(
            id,
            1,
            ApiKeyEvent::ApiKeyCreated {
                name: "ci".into(),
                secret: secret(&old),
                limits: KeyLimits::default(),
            },
        );
        let now = Utc::now();
        assert_eq!(table.authenticate(&old, now).unwrap().id, id);
        assert_eq!(table.authenticate(&new, now), Err(KeyRefusal::Unknown));
        let until = now + chrono::Duration::seconds(60);
        table.apply(
            id,
            2,
            ApiKeyEvent::ApiKeyRotated {
                secret: secret(&new),
                previous: secret(&old),
                previous_valid_until: until,
            },
        );
        assert!(table.authenticate(&old, now).is_ok());
        assert!(table.authenticate(&new, now).is_ok());
        assert_eq!(table.authenticate(&old, until), Err(KeyRefusal::Expired));
        table.apply(id, 3, ApiKeyEvent::ApiKeyRevoked { reason: None });
        assert_eq!(table.version_of(id), 3);
        assert_eq!(table.authenticate(&new, now), Err(KeyRefusal::Unknown));
        assert_eq!(table.authenticate(&old, now), Err(KeyRefusal::Unknown));
        assert_eq!(
            table.authenticate("sk-ip-short", now),
            Err(KeyRefusal::Malformed)
        );
        assert!(table.is_empty());
    }
}
