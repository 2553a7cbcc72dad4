//! The global stream reader.
//!
//! Reads events in (transaction_id, position) order and only below the xid8 horizon: the
//! oldest transaction still running when the read starts. Everything below it has committed or
//! rolled back, so nothing can later appear behind a cursor that moved past it. A transaction
//! held open delays readers (they never skip it); it never makes them lose an event.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use crate::{Cursor, StoredEvent};

/// Which events to read; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    pub correlation_id: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.aggregate_type
            .as_ref()
            .is_none_or(|t| *t == e.aggregate_type)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|i| *i == e.aggregate_id)
            && self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.correlation_id.as_ref().is_none_or(|c| {
                e.metadata.get("correlation_id").and_then(|v| v.as_str()) == Some(c.as_str())
            })
    }
}

const COLUMNS: &str = "select position, transaction_id::text::bigint as txid, aggregate_type, \
    aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at from events";

/// Reads up to `limit` events after `after`, below the horizon, in stream order.
pub async fn read_after(
    conn: &mut PgConnection,
    after: Cursor,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    read(conn, after, None, filter, limit).await
}

/// Reads up to `limit` events after `after` and up to `upto` (inclusive). Every event up to a
/// cursor some reader has already seen is committed, so no horizon is needed.
pub async fn read_range(
    conn: &mut PgConnection,
    after: Cursor,
    upto: Cursor,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    read(conn, after, Some(upto), filter, limit).await
}

fn read<'a>(
    conn: &'a mut PgConnection,
    after: Cursor,
    upto: Option<Cursor>,
    filter: &'a Filter,
    limit: i64,
) -> futures::future::BoxFuture<'a, Result<Vec<StoredEvent>, sqlx::Error>> {
    Box::pin(async move {
        let mut q = QueryBuilder::new(COLUMNS);
        q.push(" where (transaction_id, position) > (")
            .push_bind(after.transaction_id.to_string())
            .push("::xid8, ")
            .push_bind(after.position)
            .push(")");
        match upto {
            Some(upto) => {
                q.push(" and (transaction_id, position) <= (")
                    .push_bind(upto.transaction_id.to_string())
                    .push("::xid8, ")
                    .push_bind(upto.position)
                    .push(")");
            }
            None => {
                q.push(" and transaction_id < pg_snapshot_xmin(pg_current_snapshot())");
            }
        }
        if let Some(t) = &filter.aggregate_type {
            q.push(" and aggregate_type = ").push_bind(t.clone());
        }
        if let Some(i) = &filter.aggregate_id {
            q.push(" and aggregate_id = ").push_bind(i.clone());
        }
        if let Some(t) = &filter.event_type {
            q.push(" and event_type = ").push_bind(t.clone());
        }
        if let Some(c) = &filter.correlation_id {
            q.push(" and metadata ->> 'correlation_id' = ")
                .push_bind(c.clone());
        }
        q.push(" order by transaction_id, position limit ")
            .push_bind(limit);
        let rows = q.build().fetch_all(conn).await?;
        rows.iter().map(decode).collect()
    })
}

/// A page of [`read_after_checked`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Events below the horizon, in stream order.
    pub events: Vec<StoredEvent>,
    /// Committed events follow that are not yet below the horizon (see [`held_back`]).
    pub held_back: bool,
}

/// [`read_after`] and [`held_back`] in one query: reads committed events after `after`
/// whether or not they are below the horizon, keeps the prefix that is (in stream order, the
/// events below the horizon all come first), and reports whether more were seen behind it.
/// Readers that poll hot (process managers) save a round trip per wake-up.
pub async fn read_after_checked(
    conn: &mut PgConnection,
    after: Cursor,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let columns = COLUMNS.replace(
        " from events",
        ", (transaction_id < pg_snapshot_xmin(pg_current_snapshot())) as below from events",
    );
    let sql = format!(
        "{columns} where (transaction_id, position) > ($1::text::xid8, $2) \
         order by transaction_id, position limit $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    let mut page = Page::default();
    for row in &rows {
        if !row.try_get::<bool, _>("below")? {
            page.held_back = true;
            break;
        }
        page.events.push(decode(row)?);
    }
    Ok(page)
}

/// True when committed events after `after` exist but are still behind the horizon: an older
/// transaction (in any database of the cluster) is open. A notification has then already been
/// spent on them, so the caller must retry shortly instead of waiting for the next one.
pub async fn held_back(conn: &mut PgConnection, after: Cursor) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from events where (transaction_id, position) > ($1::text::xid8, $2))",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.position)
    .fetch_one(conn)
    .await
}

/// Events of one aggregate in sequence order (its history).
pub async fn aggregate_history(
    conn: &mut PgConnection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{COLUMNS} where aggregate_type = $1 and aggregate_id = $2 order by sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(decode).collect()
}

/// Where the event at a position stands for a global read after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// No committed event has that position.
    Unknown,
    /// Committed and below the horizon: a read after it misses nothing.
    Readable(Cursor),
    /// Committed, but an older transaction is still open somewhere in the cluster: a read
    /// after it now could miss that transaction's events. It becomes readable when they end
    /// (normally within milliseconds). A client can hold such a position: a command's answer
    /// names the position it appended at once.
    Settling,
}

/// Where the event at `position` stands; position 0 is the start of the log.
pub async fn locate(conn: &mut PgConnection, position: i64) -> Result<Located, sqlx::Error> {
    if position == 0 {
        return Ok(Located::Readable(Cursor::START));
    }
    let row: Option<(i64, bool)> = sqlx::query_as(
        "select transaction_id::text::bigint,
                transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         from events where position = $1",
    )
    .bind(position)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => Located::Unknown,
        Some((transaction_id, true)) => Located::Readable(Cursor {
            transaction_id,
            position,
        }),
        Some((_, false)) => Located::Settling,
    })
}

/// The cursor of a committed event, whether or not it is below the horizon yet. For reading
/// one aggregate's history up to that event (an aggregate's events commit in sequence order,
/// so none of them can still appear before it); not for starting a global read after it.
pub async fn committed_cursor_of(
    conn: &mut PgConnection,
    position: i64,
) -> Result<Option<Cursor>, sqlx::Error> {
    if position == 0 {
        return Ok(Some(Cursor::START));
    }
    let txid: Option<i64> =
        sqlx::query_scalar("select transaction_id::text::bigint from events where position = $1")
            .bind(position)
            .fetch_optional(conn)
            .await?;
    Ok(txid.map(|transaction_id| Cursor {
        transaction_id,
        position,
    }))
}

/// The cursor of the last readable event (the head of the stream below the horizon).
pub async fn head(conn: &mut PgConnection) -> Result<Cursor, sqlx::Error> {
    let row = sqlx::query(
        "select transaction_id::text::bigint as txid, position from events
         where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         order by transaction_id desc, position desc limit 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Cursor {
            transaction_id: r.try_get("txid")?,
            position: r.try_get("position")?,
        },
        None => Cursor::START,
    })
}

/// Decodes a row that has the reader's columns (`position`, `txid` (the transaction id as a
/// bigint), `aggregate_type`, `aggregate_id`, `sequence`, `event_type`, `event_version`,
/// `payload`, `metadata`, `recorded_at`).
pub fn decode(row: &PgRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        position: row.try_get("position")?,
        transaction_id: row.try_get("txid")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: std::sync::Arc::new(row.try_get("payload")?),
        metadata: std::sync::Arc::new(row.try_get("metadata")?),
        recorded_at: row.try_get("recorded_at")?,
    })
}
