//! The API key's rules, one by one: creation checks, partial updates, revocation, rotation.

use chrono::{Duration, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::api_key::{
    ApiKey, ApiKeyCommand, ApiKeyError, ApiKeyEvent, KeyLimits, KeySecret, LimitsPatch, decide,
    prefix_of,
};

fn secret(c: char) -> KeySecret {
    KeySecret {
        prefix: format!("sk-ip-{}", c.to_string().repeat(8)),
        key_hash: c.to_string().repeat(64),
    }
}

fn created(limits: KeyLimits) -> ApiKey {
    let mut key = ApiKey::default();
    for e in decide(
        &key,
        ApiKeyCommand::Create {
            name: " ci ".into(),
            secret: secret('a'),
            limits,
            now: Utc::now(),
        },
    )
    .unwrap()
    {
        key.apply(e);
    }
    key
}

fn apply(key: &mut ApiKey, command: ApiKeyCommand) -> Result<Vec<ApiKeyEvent>, ApiKeyError> {
    let events = decide(key, command)?;
    for e in events.clone() {
        key.apply(e);
    }
    Ok(events)
}

#[test]
fn creation_trims_the_name_deduplicates_models_and_checks_limits() {
    let key = created(KeyLimits {
        models: Some(vec!["a/b".into(), " a/b ".into(), "c/d".into()]),
        ..KeyLimits::default()
    });
    let s = key.state.unwrap();
    assert_eq!(s.name, "ci");
    assert_eq!(
        s.limits.models,
        Some(vec!["a/b".to_string(), "c/d".to_string()])
    );
    let now = Utc::now();
    let create = |name: &str, limits: KeyLimits, secret: KeySecret| ApiKeyCommand::Create {
        name: name.into(),
        secret,
        limits,
        now,
    };
    let empty = ApiKey::default();
    let cases = [
        (
            create("", KeyLimits::default(), secret('a')),
            ApiKeyError::InvalidName,
        ),
        (
            create(
                "x",
                KeyLimits {
                    rpm_limit: Some(0),
                    ..Default::default()
                },
                secret('a'),
            ),
            ApiKeyError::InvalidLimit {
                field: "rpm_limit",
                value: 0,
            },
        ),
        (
            create(
                "x",
                KeyLimits {
                    tpm_limit: Some(-5),
                    ..Default::default()
                },
                secret('a'),
            ),
            ApiKeyError::InvalidLimit {
                field: "tpm_limit",
                value: -5,
            },
        ),
        (
            create(
                "x",
                KeyLimits {
                    models: Some(vec![]),
                    ..Default::default()
                },
                secret('a'),
            ),
            ApiKeyError::InvalidModels,
        ),
        (
            create(
                "x",
                KeyLimits {
                    expires_at: Some(now - Duration::seconds(1)),
                    ..Default::default()
                },
                secret('a'),
            ),
            ApiKeyError::ExpiryInPast,
        ),
        (
            create(
                "x",
                KeyLimits::default(),
                KeySecret {
                    prefix: "sk-ip-a".into(),
                    key_hash: "zz".into(),
                },
            ),
            ApiKeyError::InvalidSecret,
        ),
    ];
    for (command, error) in cases {
        assert_eq!(decide(&empty, command), Err(error));
    }
    let key = created(KeyLimits::default());
    assert_eq!(
        decide(&key, create("again", KeyLimits::default(), secret('b'))),
        Err(ApiKeyError::AlreadyExists)
    );
    assert_eq!(
        decide(&empty, ApiKeyCommand::Revoke { reason: None }),
        Err(ApiKeyError::NotFound)
    );
}

#[test]
fn updates_change_only_what_is_sent_and_null_clears() {
    let mut key = created(KeyLimits {
        rpm_limit: Some(10),
        tpm_limit: Some(1000),
        ..KeyLimits::default()
    });
    let now = Utc::now();
    // Nothing changes: no event.
    let events = apply(
        &mut key,
        ApiKeyCommand::Update {
            name: Some("ci".into()),
            limits: LimitsPatch::default(),
            now,
        },
    )
    .unwrap();
    assert!(events.is_empty());
    let events = apply(
        &mut key,
        ApiKeyCommand::Update {
            name: Some("renamed".into()),
            limits: LimitsPatch {
                rpm_limit: Some(None),
                ..LimitsPatch::default()
            },
            now,
        },
    )
    .unwrap();
    assert_eq!(events.len(), 2);
    let s = key.state.clone().unwrap();
    assert_eq!(s.name, "renamed");
    assert_eq!(s.limits.rpm_limit, None);
    assert_eq!(s.limits.tpm_limit, Some(1000));
    // The PATCH shape: absent keeps, null clears.
    let patch: LimitsPatch = serde_json::from_str(r#"{"tpm_limit": null}"#).unwrap();
    assert_eq!(patch.tpm_limit, Some(None));
    assert_eq!(patch.rpm_limit, None);
}

#[test]
fn revocation_is_final_and_idempotent() {
    let mut key = created(KeyLimits::default());
    assert_eq!(
        apply(
            &mut key,
            ApiKeyCommand::Revoke {
                reason: Some("leaked".into())
            }
        )
        .unwrap()
        .len(),
        1
    );
    assert!(
        apply(&mut key, ApiKeyCommand::Revoke { reason: None })
            .unwrap()
            .is_empty()
    );
    let now = Utc::now();
    assert_eq!(
        decide(
            &key,
            ApiKeyCommand::Update {
                name: Some("x".into()),
                limits: LimitsPatch::default(),
                now
            }
        ),
        Err(ApiKeyError::Revoked)
    );
    assert_eq!(
        decide(
            &key,
            ApiKeyCommand::Rotate {
                secret: secret('b'),
                grace_seconds: 0,
                now
            }
        ),
        Err(ApiKeyError::Revoked)
    );
}

#[test]
fn rotation_keeps_the_previous_secret_until_the_grace_period_ends() {
    let mut key = created(KeyLimits::default());
    let now = Utc::now();
    apply(
        &mut key,
        ApiKeyCommand::Rotate {
            secret: secret('b'),
            grace_seconds: 60,
            now,
        },
    )
    .unwrap();
    let s = key.state.clone().unwrap();
    assert_eq!(s.secret, secret('b'));
    assert_eq!(s.previous, Some((secret('a'), now + Duration::seconds(60))));
    assert_eq!(
        decide(
            &key,
            ApiKeyCommand::Rotate {
                secret: secret('c'),
                grace_seconds: -1,
                now
            }
        ),
        Err(ApiKeyError::InvalidGrace { value: -1 })
    );
    // The events carry hashes and prefixes only.
    let json = serde_json::to_string(
        &decide(
            &key,
            ApiKeyCommand::Rotate {
                secret: secret('c'),
                grace_seconds: 0,
                now,
            },
        )
        .unwrap(),
    )
    .unwrap();
    assert!(json.contains("key_hash") && json.contains("sk-ip-cccccccc"));
}

#[test]
fn only_well_formed_keys_have_a_prefix() {
    let key = format!("sk-ip-{}", "0123456789abcdef".repeat(4));
    assert_eq!(prefix_of(&key), Some("sk-ip-01234567"));
    assert_eq!(prefix_of(&key[..69]), None);
    assert_eq!(prefix_of(&key.replace('a', "A")), None);
    assert_eq!(prefix_of("Bearer x"), None);
}
