//! The API keys read model: one row per key, as the console lists them (never the secret,
//! nor its hash).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::api_key::{ApiKey, ApiKeyEvent, ApiKeyState, KeyLimits};
use inferplane_store::StoredEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use crate::Projection;

/// Keeps `rm_api_keys.keys` current.
pub struct ApiKeys;

const SCHEMA: &str = "
create table keys (
    id          uuid primary key,
    name        text not null,
    prefix      text not null,
    -- the aggregate's state without the secret's hash
    limits      jsonb not null,
    revoked     boolean not null,
    previous_prefix text,
    grace_until timestamptz,
    created_at  timestamptz not null,
    revoked_at  timestamptz,
    rotated_at  timestamptz,
    version     bigint not null,
    updated_at  timestamptz not null
) with (fillfactor = 50);
create index keys_created on keys (created_at desc, id);
";

/// A key as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The non-secret start of the key, e.g. `sk-ip-1a2b3c4d`.
    pub prefix: String,
    pub models: Option<Vec<String>>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_tokens: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    /// The replaced key's prefix while its grace period runs.
    pub previous_prefix: Option<String>,
    pub grace_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

struct Folded {
    key: ApiKey,
    version: i64,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    rotated_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl ApiKeyView {
    /// The view of a key's state (the API answers commands with it).
    #[allow(clippy::too_many_arguments)]
    pub fn from_state(
        id: Uuid,
        s: &ApiKeyState,
        version: i64,
        created_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
        rotated_at: Option<DateTime<Utc>>,
        last_used_at: Option<DateTime<Utc>>,
        updated_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        let l = &s.limits;
        let status = if s.revoked {
            "revoked"
        } else if l.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        let (previous_prefix, grace_until) = match &s.previous {
            Some((p, until)) if *until > now => (Some(p.prefix.clone()), Some(*until)),
            _ => (None, None),
        };
        Self {
            id,
            name: s.name.clone(),
            prefix: s.secret.prefix.clone(),
            models: l.models.clone(),
            rpm_limit: l.rpm_limit,
            tpm_limit: l.tpm_limit,
            budget_tokens: l.budget_tokens,
            expires_at: l.expires_at,
            status,
            previous_prefix,
            grace_until,
            created_at,
            revoked_at,
            rotated_at,
            last_used_at,
            version,
            updated_at,
        }
    }
}

const SELECT: &str = "select k.id, k.name, k.prefix, k.limits, k.revoked, k.previous_prefix,
        k.grace_until, k.created_at, k.revoked_at, k.rotated_at, k.version, k.updated_at,
        u.last_used_at
    from rm_api_keys.keys k left join rm_usage.key_last_used u on u.key_id = k.id";

fn decode(r: &sqlx::postgres::PgRow, now: DateTime<Utc>) -> Result<ApiKeyView, sqlx::Error> {
    let limits: KeyLimits =
        serde_json::from_value(r.try_get("limits")?).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let revoked: bool = r.try_get("revoked")?;
    let grace_until: Option<DateTime<Utc>> = r.try_get("grace_until")?;
    let in_grace = grace_until.is_some_and(|g| g > now);
    Ok(ApiKeyView {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        status: if revoked {
            "revoked"
        } else if limits.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        },
        models: limits.models,
        rpm_limit: limits.rpm_limit,
        tpm_limit: limits.tpm_limit,
        budget_tokens: limits.budget_tokens,
        expires_at: limits.expires_at,
        previous_prefix: if in_grace {
            r.try_get("previous_prefix")?
        } else {
            None
        },
        grace_until: if in_grace { grace_until } else { None },
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        rotated_at: r.try_get("rotated_at")?,
        last_used_at: r.try_get("last_used_at")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Every key, newest first.
pub async fn list<'e>(db: impl PgExecutor<'e>) -> Result<Vec<ApiKeyView>, sqlx::Error> {
    let now = Utc::now();
    let rows = sqlx::query(&format!("{SELECT} order by k.created_at desc, k.id"))
        .fetch_all(db)
        .await?;
    rows.iter().map(|r| decode(r, now)).collect()
}

/// One key.
pub async fn get<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<ApiKeyView>, sqlx::Error> {
    let row = sqlx::query(&format!("{SELECT} where k.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(|r| decode(&r, Utc::now())).transpose()
}

#[async_trait::async_trait]
impl Projection for ApiKeys {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn version(&self) -> i32 {
        1
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[ApiKey::TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()> {
        let relevant: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == ApiKey::TYPE)
            .collect();
        if relevant.is_empty() {
            return Ok(());
        }
        // Keys are few and small: fold each touched key from its whole history.
        let mut touched: HashMap<String, ()> = HashMap::new();
        for e in &relevant {
            touched.insert(e.aggregate_id.clone(), ());
        }
        for id in touched.keys() {
            let rows = sqlx::query(
                "select sequence, payload, recorded_at from public.events
                 where aggregate_type = $1 and aggregate_id = $2 order by sequence",
            )
            .bind(ApiKey::TYPE)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            let mut f: Option<Folded> = None;
            for r in rows {
                let sequence: i64 = r.try_get("sequence")?;
                let at: DateTime<Utc> = r.try_get("recorded_at")?;
                let event: ApiKeyEvent = serde_json::from_value(r.try_get("payload")?)?;
                let folded = f.get_or_insert_with(|| Folded {
                    key: ApiKey::default(),
                    version: 0,
                    created_at: at,
                    revoked_at: None,
                    rotated_at: None,
                    updated_at: at,
                });
                match &event {
                    ApiKeyEvent::ApiKeyRevoked { .. } => folded.revoked_at = Some(at),
                    ApiKeyEvent::ApiKeyRotated { .. } => folded.rotated_at = Some(at),
                    _ => {}
                }
                folded.key.apply(event);
                folded.version = sequence;
                folded.updated_at = at;
            }
            let Some(f) = f else { continue };
            let Some(s) = &f.key.state else { continue };
            let (previous_prefix, grace_until) = match &s.previous {
                Some((p, until)) => (Some(p.prefix.clone()), Some(*until)),
                None => (None, None),
            };
            sqlx::query(
                "insert into keys (id, name, prefix, limits, revoked, previous_prefix, grace_until,
                     created_at, revoked_at, rotated_at, version, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 on conflict (id) do update set name = $2, prefix = $3, limits = $4, revoked = $5,
                     previous_prefix = $6, grace_until = $7, revoked_at = $9, rotated_at = $10,
                     version = $11, updated_at = $12",
            )
            .bind(id.parse::<Uuid>()?)
            .bind(&s.name)
            .bind(&s.secret.prefix)
            .bind(serde_json::to_value(&s.limits)?)
            .bind(s.revoked)
            .bind(previous_prefix)
            .bind(grace_until)
            .bind(f.created_at)
            .bind(f.revoked_at)
            .bind(f.rotated_at)
            .bind(f.version)
            .bind(f.updated_at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
