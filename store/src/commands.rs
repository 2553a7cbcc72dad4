//! Loading aggregates and executing commands against them.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use inferplane_domain::EventMetadata;
use sqlx::{Acquire, PgConnection, PgPool, Row};

use crate::writer::GroupWriter;

/// Everything a command carries besides itself.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub metadata: EventMetadata,
    /// The aggregate version (last sequence) the caller saw, from `If-Match`; a different
    /// current version refuses the command with [`CommandError::Conflict`].
    pub expected_version: Option<i64>,
    pub idempotency: Option<Idempotency>,
}

impl CommandContext {
    pub fn new(metadata: EventMetadata) -> Self {
        Self {
            metadata,
            expected_version: None,
            idempotency: None,
        }
    }
}

/// A client-supplied idempotency key and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    /// Same key with another fingerprint is a client error, never a silent replay.
    pub fingerprint: String,
}

/// What a successful command left behind.
#[derive(Debug)]
pub struct CommandOutcome<A: Aggregate> {
    pub aggregate_id: String,
    /// The aggregate after the command.
    pub aggregate: A,
    /// Its version (last sequence); 0 when it has no events.
    pub version: i64,
    /// Events appended by this command (empty for a no-op or an idempotent replay).
    pub events: Vec<A::Event>,
    /// Global position of the last appended event.
    pub last_position: Option<i64>,
    /// When the aggregate's first and last events were recorded.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// True when an earlier command with the same idempotency key produced this result.
    pub replayed: bool,
}

/// Why a command did not append.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Another command changed the aggregate first (optimistic concurrency).
    #[error(
        "the {aggregate_type} was changed concurrently (expected version {expected}, now {actual})"
    )]
    Conflict {
        aggregate_type: &'static str,
        expected: i64,
        actual: i64,
    },
    /// The idempotency key was already used for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The store failed; details are logged, not shown.
    #[error("event store failure")]
    Store(#[from] anyhow::Error),
}

impl<E: std::error::Error> From<sqlx::Error> for CommandError<E> {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Attempts of a command without If-Match that keeps losing races with other writers.
const MAX_RACE_RETRIES: u32 = 8;

/// The write side of the event store.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    writer: GroupWriter,
}

/// A serialised event ready to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            writer: GroupWriter::new(pool.clone()),
            pool,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rebuilds an aggregate from its events, up to `upto` (inclusive) when given.
    #[tracing::instrument(skip_all, err, fields(aggregate_type = A::TYPE, aggregate_id))]
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
        upto: Option<i64>,
    ) -> anyhow::Result<Loaded<A>> {
        load_with::<A>(&mut *self.pool.acquire().await?, aggregate_id, upto).await
    }

    /// `from` (the aggregate as loaded earlier) brought up to date: only the events after its
    /// version are read. Events are never rewritten, so this is what [`load`](Self::load)
    /// returns, for the cost of the events that are new.
    #[tracing::instrument(skip_all, err, fields(aggregate_type = A::TYPE, aggregate_id))]
    pub async fn load_on<A: Aggregate>(
        &self,
        aggregate_id: &str,
        from: Loaded<A>,
    ) -> anyhow::Result<Loaded<A>> {
        load_onto::<A>(&mut *self.pool.acquire().await?, aggregate_id, from, None).await
    }

    /// Executes `command` on the aggregate `aggregate_id`: loads it, lets it decide, appends
    /// the resulting events in one transaction (with the idempotency key, if any).
    #[tracing::instrument(skip_all, err(level = "debug"), fields(aggregate_type = A::TYPE, aggregate_id))]
    pub async fn execute<A: Aggregate>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        A::Command: Clone,
    {
        self.execute_from::<A>(aggregate_id, None, command, services, ctx)
            .await
    }

    /// Like [`execute`](Self::execute), but decides on `loaded`, the aggregate as the caller
    /// has just loaded (or last changed) it, instead of loading it again: one round trip
    /// instead of two when the command appends. If another writer appended since, the append
    /// conflicts and the command is decided again on a fresh load, exactly as `execute` does
    /// after a race; a refusal or a no-op is likewise decided again on a fresh load, so the
    /// answer is always the one `execute` would give.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(aggregate_type = A::TYPE, aggregate_id))]
    pub async fn execute_on<A: Aggregate>(
        &self,
        aggregate_id: &str,
        loaded: Loaded<A>,
        command: A::Command,
        services: &A::Services,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        A::Command: Clone,
    {
        self.execute_from::<A>(aggregate_id, Some(loaded), command, services, ctx)
            .await
    }

    async fn execute_from<A: Aggregate>(
        &self,
        aggregate_id: &str,
        mut loaded: Option<Loaded<A>>,
        command: A::Command,
        services: &A::Services,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        A::Command: Clone,
    {
        // Without If-Match the caller did not decide on a version: a command that lost a race
        // with another writer is decided again on the new state (a few times), rather than
        // turning an internal race into a client-visible conflict.
        if ctx
            .expected_version
            .is_some_and(|v| loaded.as_ref().is_some_and(|l| l.version != v))
        {
            // The caller's If-Match is against the store, not against the state it holds.
            loaded = None;
        }
        let mut attempt = 0;
        loop {
            let preloaded = loaded.is_some();
            if !preloaded {
                attempt += 1;
            }
            match self
                .execute_once::<A>(aggregate_id, loaded.take(), command.clone(), services, ctx)
                .await
            {
                // The caller's state may be older than the store's. Only an append proves it
                // was current (it conflicts otherwise, and is decided again below): a refusal
                // or a no-op decided on it is decided again on a fresh load.
                Err(CommandError::Rejected(_)) if preloaded => continue,
                Ok(outcome) if preloaded && outcome.events.is_empty() && !outcome.replayed => {
                    continue;
                }
                Err(CommandError::Conflict { .. })
                    if ctx.expected_version.is_none() && attempt < MAX_RACE_RETRIES =>
                {
                    tracing::debug!(
                        aggregate_type = A::TYPE,
                        aggregate_id,
                        attempt,
                        "concurrent append; deciding again"
                    );
                    // Another writer is busy on this aggregate (a processor recording a burst
                    // of outcomes): after the first immediate retry, let it finish, with
                    // jitter so that racing retries spread out.
                    if attempt > 1 {
                        let cap_ms = 1u64 << attempt.min(6);
                        let ms = rand::Rng::random_range(&mut rand::rng(), 0..=cap_ms);
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn execute_once<A: Aggregate>(
        &self,
        aggregate_id: &str,
        loaded: Option<Loaded<A>>,
        command: A::Command,
        services: &A::Services,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        if let Some(idem) = &ctx.idempotency
            && let Some(outcome) = self.replay::<A>(ctx, idem).await?
        {
            return Ok(outcome);
        }
        let Loaded {
            mut aggregate,
            version,
            created_at,
            updated_at,
        } = match loaded {
            Some(loaded) => loaded,
            None => self.load::<A>(aggregate_id, None).await?,
        };
        if let Some(expected) = ctx.expected_version
            && expected != version
        {
            return Err(CommandError::Conflict {
                aggregate_type: A::TYPE,
                expected,
                actual: version,
            });
        }
        let sink = EventSink::default();
        if let Err(rejection) = aggregate.handle(command, services, &sink).await {
            // A retry racing its first attempt sees the first attempt's effect and would be
            // refused by it: answer with the first result instead.
            if let Some(idem) = &ctx.idempotency
                && let Some(outcome) = self.replay::<A>(ctx, idem).await?
            {
                return Ok(outcome);
            }
            return Err(CommandError::Rejected(rejection));
        }
        let events = sink.collect().await;
        let new_events = events
            .iter()
            .map(|e| {
                Ok(NewEvent {
                    event_type: e.event_type(),
                    event_version: e.event_version(),
                    payload: serde_json::to_value(e)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let new_version = version + new_events.len() as i64;
        let metadata = serde_json::to_value(&ctx.metadata).map_err(anyhow::Error::from)?;
        let appended = match &ctx.idempotency {
            // Written by the store's group writer, with the appends queued beside it (one
            // statement, atomic on its own).
            None => self
                .writer
                .append(A::TYPE, aggregate_id, version, new_events.into(), metadata)
                .await
                .map(|p| (p, true)),
            // The key is recorded in the same transaction as the events.
            Some(idem) => {
                let mut conn = self.pool.acquire().await?;
                let mut tx = (&mut *conn).begin().await?;
                let appended = append_in(
                    &mut tx,
                    A::TYPE,
                    aggregate_id,
                    version,
                    &new_events,
                    &metadata,
                )
                .await;
                match appended {
                    Ok(p) => {
                        let recorded =
                            record_key(&mut tx, ctx, idem, A::TYPE, aggregate_id, new_version)
                                .await?;
                        if recorded {
                            tx.commit().await?;
                        } else {
                            tx.rollback().await?;
                        }
                        Ok((p, recorded))
                    }
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                }
            }
        };
        let (last_position, appended_at) = match appended {
            Ok((p, true)) => p,
            // A concurrent request with the same key committed first: our events were rolled
            // back; answer with its result.
            Ok((_, false)) => {
                let idem = ctx.idempotency.as_ref().expect("only with a key");
                return match self.replay::<A>(ctx, idem).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(anyhow::anyhow!("idempotency record vanished").into()),
                };
            }
            Err(AppendError::Conflict) => {
                // A retry of the same request racing its first attempt: answer with the
                // attempt that won.
                if let Some(idem) = &ctx.idempotency
                    && let Some(outcome) = self.replay::<A>(ctx, idem).await?
                {
                    return Ok(outcome);
                }
                let actual = self.load::<A>(aggregate_id, None).await?.version;
                return Err(CommandError::Conflict {
                    aggregate_type: A::TYPE,
                    expected: version,
                    actual,
                });
            }
            Err(AppendError::Db(e)) => return Err(e.into()),
            Err(AppendError::Unknown(e)) => return Err(anyhow::anyhow!(e).into()),
        };
        for e in &events {
            metrics::counter!("inferplane_events_appended_total", "aggregate_type" => A::TYPE, "event_type" => e.event_type()).increment(1);
        }
        Ok(CommandOutcome {
            aggregate_id: aggregate_id.to_string(),
            aggregate,
            version: new_version,
            events,
            last_position,
            created_at: created_at.or(appended_at),
            updated_at: appended_at.or(updated_at),
            replayed: false,
        })
    }

    async fn replay<A: Aggregate>(
        &self,
        ctx: &CommandContext,
        idem: &Idempotency,
    ) -> Result<Option<CommandOutcome<A>>, CommandError<A::Error>> {
        let row = sqlx::query(
            "select fingerprint, aggregate_type, aggregate_id, sequence from command_idempotency
             where tenant_id = $1 and idempotency_key = $2",
        )
        .bind(ctx.metadata.tenant_id)
        .bind(&idem.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let fingerprint: String = row.try_get("fingerprint")?;
        let aggregate_type: String = row.try_get("aggregate_type")?;
        if fingerprint != idem.fingerprint || aggregate_type != A::TYPE {
            return Err(CommandError::IdempotencyKeyReused);
        }
        let aggregate_id: String = row.try_get("aggregate_id")?;
        let sequence: i64 = row.try_get("sequence")?;
        // The first result is the aggregate as that command left it, whatever happened since.
        let loaded = self.load::<A>(&aggregate_id, Some(sequence)).await?;
        Ok(Some(CommandOutcome {
            aggregate_id,
            aggregate: loaded.aggregate,
            version: loaded.version,
            events: Vec::new(),
            last_position: None,
            created_at: loaded.created_at,
            updated_at: loaded.updated_at,
            replayed: true,
        }))
    }

    /// Appends already-serialised events to one aggregate in one transaction, expecting it at
    /// `expected_version`. The low-level path used by [`execute`](Self::execute) and benchmarks.
    pub async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: i64,
        events: &[NewEvent],
        metadata: &EventMetadata,
    ) -> anyhow::Result<Option<i64>> {
        let last = self
            .writer
            .append(
                aggregate_type,
                aggregate_id,
                expected_version,
                events.into(),
                serde_json::to_value(metadata)?,
            )
            .await
            .map_err(|e| match e {
                AppendError::Conflict => anyhow::anyhow!("concurrent append to {aggregate_id}"),
                AppendError::Db(e) => e.into(),
                AppendError::Unknown(e) => anyhow::anyhow!(e),
            })?;
        Ok(last.0)
    }
}

/// Rebuilds an aggregate from its events on `conn`.
async fn load_with<A: Aggregate>(
    conn: &mut PgConnection,
    aggregate_id: &str,
    upto: Option<i64>,
) -> anyhow::Result<Loaded<A>> {
    let empty = Loaded {
        aggregate: A::default(),
        version: 0,
        created_at: None,
        updated_at: None,
    };
    load_onto(conn, aggregate_id, empty, upto).await
}

/// Applies to `loaded` the aggregate's events after its version, up to `upto` (inclusive).
async fn load_onto<A: Aggregate>(
    conn: &mut PgConnection,
    aggregate_id: &str,
    mut loaded: Loaded<A>,
    upto: Option<i64>,
) -> anyhow::Result<Loaded<A>> {
    let rows = sqlx::query(
        "select sequence, payload, recorded_at from events
         where aggregate_type = $1 and aggregate_id = $2 and sequence > $3 and sequence <= $4
         order by sequence",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .bind(loaded.version)
    .bind(upto.unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let version: i64 = row.try_get("sequence")?;
        let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
        loaded.version = version;
        loaded.created_at.get_or_insert(recorded_at);
        loaded.updated_at = Some(recorded_at);
        // Straight from the column's bytes into the event: no `serde_json::Value` in between.
        let sqlx::types::Json(event): sqlx::types::Json<A::Event> = row
            .try_get("payload")
            .map_err(|e| anyhow::anyhow!("event {} #{version} does not decode: {e}", A::TYPE))?;
        loaded.aggregate.apply(event);
    }
    Ok(loaded)
}

/// An aggregate rebuilt from its events.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub aggregate: A,
    /// Last sequence; 0 when the aggregate has no events.
    pub version: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub(crate) enum AppendError {
    Conflict,
    Db(sqlx::Error),
    /// A grouped append whose statement failed in a way that leaves its outcome unknown.
    Unknown(String),
}

/// One multi-row INSERT for all events of a command. A unique violation on the primary key
/// means another command appended the same sequence first.
pub(crate) async fn append_in(
    conn: &mut PgConnection,
    aggregate_type: &str,
    aggregate_id: &str,
    version: i64,
    events: &[NewEvent],
    metadata: &serde_json::Value,
) -> Result<(Option<i64>, Option<DateTime<Utc>>), AppendError> {
    if events.is_empty() {
        return Ok((None, None));
    }
    let sequences: Vec<i64> = (1..=events.len() as i64).map(|i| version + i).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let versions: Vec<&str> = events.iter().map(|e| e.event_version.as_str()).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
    let result = sqlx::query_as::<_, (i64, DateTime<Utc>)>(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         select $1, $2, s, t, v, p, $7
         from unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[]) as e(s, t, v, p)
         returning position, recorded_at",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(&sequences)
    .bind(&types)
    .bind(&versions)
    .bind(&payloads)
    .bind(metadata)
    .fetch_all(&mut *conn)
    .await;
    match result {
        Ok(rows) => Ok((rows.iter().map(|r| r.0).max(), rows.first().map(|r| r.1))),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(AppendError::Conflict),
        Err(e) => Err(AppendError::Db(e)),
    }
}

async fn record_key(
    conn: &mut PgConnection,
    ctx: &CommandContext,
    idem: &Idempotency,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into command_idempotency
           (tenant_id, idempotency_key, fingerprint, aggregate_type, aggregate_id, sequence)
         values ($1, $2, $3, $4, $5, $6)
         on conflict do nothing",
    )
    .bind(ctx.metadata.tenant_id)
    .bind(&idem.key)
    .bind(&idem.fingerprint)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
