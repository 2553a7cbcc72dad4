//! API keys: the credentials API clients present on `/v1`.
//!
//! A key is `sk-ip-` followed by 64 hex characters of randomness. Only its SHA-256 (hex) and a
//! non-secret display prefix (the first [`PREFIX_LEN`] characters) are ever recorded: the key
//! itself is shown once, by the API that created it, and is in no event. The prefix also
//! indexes the gateway's in-memory table, so checking a key is one map lookup and one
//! constant-time comparison of hashes.
//!
//! Times are facts inside commands (the aggregate reads no clock): a command that needs "now"
//! carries it.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

pub type ApiKeyId = Uuid;

/// What every key starts with.
pub const KEY_SCHEME: &str = "sk-ip-";
/// Length of the display prefix: the scheme and 8 hex characters.
pub const PREFIX_LEN: usize = KEY_SCHEME.len() + 8;
/// Longest name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most entries in an allowed-models list.
pub const MAX_MODELS: usize = 100;
/// Largest rpm or tpm limit.
pub const MAX_LIMIT: i64 = 1_000_000_000;
/// Longest grace period of a rotation (30 days).
pub const MAX_GRACE_SECONDS: i64 = 30 * 24 * 3600;

/// The display prefix of a full key, if it has the right shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let ok = key.len() == KEY_SCHEME.len() + 64
        && key.starts_with(KEY_SCHEME)
        && key[KEY_SCHEME.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| &key[..PREFIX_LEN])
}

/// Deserialises a PATCH field: absent stays `None`, `null` becomes `Some(None)`.
pub fn patch<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The secret half of a key as recorded: its display prefix and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySecret {
    pub prefix: String,
    pub key_hash: String,
}

/// What a key may do. `None` means no restriction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Model ids (as clients send them) this key may use.
    pub models: Option<Vec<String>>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Tokens (prompt + completion) per minute.
    pub tpm_limit: Option<i64>,
    /// Tokens (prompt + completion) per calendar month (UTC).
    pub budget_tokens: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A partial change of limits: absent fields keep their value, `null` clears.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "patch")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    pub budget_tokens: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

impl LimitsPatch {
    fn applied_to(&self, l: &KeyLimits) -> KeyLimits {
        KeyLimits {
            models: self.models.clone().unwrap_or_else(|| l.models.clone()),
            rpm_limit: self.rpm_limit.unwrap_or(l.rpm_limit),
            tpm_limit: self.tpm_limit.unwrap_or(l.tpm_limit),
            budget_tokens: self.budget_tokens.unwrap_or(l.budget_tokens),
            expires_at: self.expires_at.unwrap_or(l.expires_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApiKeyCommand {
    Create {
        name: String,
        secret: KeySecret,
        limits: KeyLimits,
        now: DateTime<Utc>,
    },
    Update {
        name: Option<String>,
        limits: LimitsPatch,
        now: DateTime<Utc>,
    },
    Revoke {
        reason: Option<String>,
    },
    /// A new secret replaces the current one, which keeps working until `now + grace_seconds`.
    Rotate {
        secret: KeySecret,
        grace_seconds: i64,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApiKeyEvent {
    ApiKeyCreated {
        name: String,
        secret: KeySecret,
        limits: KeyLimits,
    },
    ApiKeyRenamed {
        name: String,
    },
    /// The whole new set of limits.
    ApiKeyLimitsChanged {
        limits: KeyLimits,
    },
    ApiKeyRevoked {
        reason: Option<String>,
    },
    ApiKeyRotated {
        secret: KeySecret,
        /// The replaced secret, accepted until `previous_valid_until`.
        previous: KeySecret,
        previous_valid_until: DateTime<Utc>,
    },
}

impl DomainEvent for ApiKeyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ApiKeyCreated { .. } => "ApiKeyCreated",
            Self::ApiKeyRenamed { .. } => "ApiKeyRenamed",
            Self::ApiKeyLimitsChanged { .. } => "ApiKeyLimitsChanged",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            Self::ApiKeyRotated { .. } => "ApiKeyRotated",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("no such API key")]
    NotFound,
    #[error("this API key already exists")]
    AlreadyExists,
    #[error("this API key is revoked")]
    Revoked,
    #[error("name must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    #[error("{field} must be between 1 and {MAX_LIMIT} (got {value})")]
    InvalidLimit { field: &'static str, value: i64 },
    #[error("models must be 1 to {MAX_MODELS} non-empty model ids of at most 200 characters")]
    InvalidModels,
    #[error("expires_at must be in the future")]
    ExpiryInPast,
    #[error("grace_seconds must be between 0 and {MAX_GRACE_SECONDS} (got {value})")]
    InvalidGrace { value: i64 },
    #[error("reason must be at most 500 characters")]
    ReasonTooLong,
    #[error("the key secret is malformed")]
    InvalidSecret,
}

impl ApiKeyError {
    /// Stable machine-readable code, used as the problem type on the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "api-key-not-found",
            Self::AlreadyExists => "api-key-already-exists",
            Self::Revoked => "api-key-revoked",
            Self::InvalidName => "invalid-name",
            Self::InvalidLimit { .. } => "invalid-limit",
            Self::InvalidModels => "invalid-models",
            Self::ExpiryInPast => "invalid-expiry",
            Self::InvalidGrace { .. } => "invalid-grace",
            Self::ReasonTooLong => "invalid-reason",
            Self::InvalidSecret => "invalid-secret",
        }
    }
}

/// The API key aggregate: absent until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub state: Option<ApiKeyState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyState {
    pub name: String,
    pub secret: KeySecret,
    pub limits: KeyLimits,
    pub revoked: bool,
    /// The secret a rotation replaced, and until when it is still accepted.
    pub previous: Option<(KeySecret, DateTime<Utc>)>,
}

fn check_secret(s: &KeySecret) -> Result<(), ApiKeyError> {
    let hex64 = s.key_hash.len() == 64 && s.key_hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex64 || s.prefix.len() != PREFIX_LEN || !s.prefix.starts_with(KEY_SCHEME) {
        return Err(ApiKeyError::InvalidSecret);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String, ApiKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiKeyError::InvalidName);
    }
    Ok(name.to_string())
}

fn check_limits(l: &KeyLimits, now: DateTime<Utc>) -> Result<KeyLimits, ApiKeyError> {
    for (field, v) in [
        ("rpm_limit", l.rpm_limit),
        ("tpm_limit", l.tpm_limit),
        ("budget_tokens", l.budget_tokens),
    ] {
        if let Some(value) = v
            && !(1..=MAX_LIMIT).contains(&value)
        {
            return Err(ApiKeyError::InvalidLimit { field, value });
        }
    }
    let models = match &l.models {
        None => None,
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for m in list {
                let m = m.trim();
                if m.is_empty() || m.chars().count() > 200 {
                    return Err(ApiKeyError::InvalidModels);
                }
                if !out.iter().any(|o| o == m) {
                    out.push(m.to_string());
                }
            }
            if out.is_empty() || out.len() > MAX_MODELS {
                return Err(ApiKeyError::InvalidModels);
            }
            Some(out)
        }
    };
    if let Some(at) = l.expires_at
        && at <= now
    {
        return Err(ApiKeyError::ExpiryInPast);
    }
    Ok(KeyLimits {
        models,
        ..l.clone()
    })
}

/// Decides a command against the current state.
pub fn decide(key: &ApiKey, command: ApiKeyCommand) -> Result<Vec<ApiKeyEvent>, ApiKeyError> {
    match (&key.state, command) {
        (
            None,
            ApiKeyCommand::Create {
                name,
                secret,
                limits,
                now,
            },
        ) => {
            check_secret(&secret)?;
            Ok(vec![ApiKeyEvent::ApiKeyCreated {
                name: check_name(&name)?,
                secret,
                limits: check_limits(&limits, now)?,
            }])
        }
        (Some(_), ApiKeyCommand::Create { .. }) => Err(ApiKeyError::AlreadyExists),
        (None, _) => Err(ApiKeyError::NotFound),
        (Some(s), ApiKeyCommand::Revoke { reason }) => {
            if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
                return Err(ApiKeyError::ReasonTooLong);
            }
            // Revoking twice changes nothing.
            Ok(if s.revoked {
                vec![]
            } else {
                vec![ApiKeyEvent::ApiKeyRevoked { reason }]
            })
        }
        (Some(s), _) if s.revoked => Err(ApiKeyError::Revoked),
        (Some(s), ApiKeyCommand::Update { name, limits, now }) => {
            let mut events = Vec::new();
            if let Some(name) = name {
                let name = check_name(&name)?;
                if name != s.name {
                    events.push(ApiKeyEvent::ApiKeyRenamed { name });
                }
            }
            let next = limits.applied_to(&s.limits);
            if next != s.limits {
                // An unchanged expiry in the past is not a new decision.
                let check_from = if next.expires_at == s.limits.expires_at {
                    DateTime::<Utc>::MIN_UTC
                } else {
                    now
                };
                let next = check_limits(&next, check_from)?;
                if next != s.limits {
                    events.push(ApiKeyEvent::ApiKeyLimitsChanged { limits: next });
                }
            }
            Ok(events)
        }
        (
            Some(s),
            ApiKeyCommand::Rotate {
                secret,
                grace_seconds,
                now,
            },
        ) => {
            check_secret(&secret)?;
            if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
                return Err(ApiKeyError::InvalidGrace {
                    value: grace_seconds,
                });
            }
            Ok(vec![ApiKeyEvent::ApiKeyRotated {
                secret,
                previous: s.secret.clone(),
                previous_valid_until: now + chrono::Duration::seconds(grace_seconds),
            }])
        }
    }
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = "api_key";
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = ApiKeyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ApiKeyEvent::ApiKeyCreated {
                name,
                secret,
                limits,
            } => {
                self.state = Some(ApiKeyState {
                    name,
                    secret,
                    limits,
                    revoked: false,
                    previous: None,
                });
            }
            ApiKeyEvent::ApiKeyRenamed { name } => {
                if let Some(s) = self.state.as_mut() {
                    s.name = name;
                }
            }
            ApiKeyEvent::ApiKeyLimitsChanged { limits } => {
                if let Some(s) = self.state.as_mut() {
                    s.limits = limits;
                }
            }
            ApiKeyEvent::ApiKeyRevoked { .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.revoked = true;
                    s.previous = None;
                }
            }
            ApiKeyEvent::ApiKeyRotated {
                secret,
                previous,
                previous_valid_until,
            } => {
                if let Some(s) = self.state.as_mut() {
                    s.secret = secret;
                    s.previous = Some((previous, previous_valid_until));
                }
            }
        }
    }
}
