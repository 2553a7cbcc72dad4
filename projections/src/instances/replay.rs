//! The auditor's replay: one instance's history, event by event, and the instance as it stood
//! at any point — a time, or a position of the global stream — computed from the events
//! themselves with the same fold as the read model, never from the read model.
//!
//! A position is compared in stream order (transaction, then position), as readers of the
//! stream see it: "the state at position P" is what a client that had read up to P knew.

use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::catalog::format_micro_eur;
use inferplane_domain::instance::{Instance, InstanceEvent, InstanceStatus};
use inferplane_store::reader;
use serde::Serialize;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{InstanceView, Tracked};

/// A point of an instance's history: a time, or a position of the global stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PointInTime {
    /// Everything up to and including the event at this position, in stream order.
    Position(i64),
    /// Everything recorded at or before this time.
    Time(DateTime<Utc>),
}

/// A value that is neither a position nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is neither a stream position (0 or more) nor an RFC 3339 time such as 2026-11-25T14:35:00Z"
)]
pub struct InvalidPointInTime(pub String);

impl std::str::FromStr for PointInTime {
    type Err = InvalidPointInTime;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let invalid = || InvalidPointInTime(s.chars().take(64).collect());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Self::Position).map_err(|_| invalid());
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self::Time(t.with_timezone(&Utc)))
            .map_err(|_| invalid())
    }
}

impl std::fmt::Display for PointInTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Position(p) => write!(f, "position {p}"),
            Self::Time(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

/// Why a replay has nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no instance {0}")]
    NotFound(Uuid),
    #[error("instance {id} did not exist yet at {at}")]
    NotYet { id: Uuid, at: PointInTime },
    #[error("no event at position {0}")]
    UnknownPosition(i64),
    #[error("event at position {position} does not decode: {source}")]
    Decode {
        position: i64,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// One event of the history, with what it left behind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedEvent {
    pub position: i64,
    pub sequence: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    /// `kind:id` of the actor recorded in the metadata (`operator:admin`).
    pub actor: String,
    pub status_after: InstanceStatus,
    pub progress_after: u8,
    /// The payload in a few words (see [`summary`]).
    pub summary: String,
}

/// An instance's history up to a point, and the instance it left.
#[derive(Debug, Clone)]
pub struct InstanceReplay {
    pub id: Uuid,
    pub history: Vec<ReplayedEvent>,
    pub tracked: Tracked,
    /// Position of the last event applied.
    pub position: i64,
}

impl InstanceReplay {
    /// The instance as it stood, its cost counted up to `as_of` (or the end of billing).
    pub fn view(&self, as_of: DateTime<Utc>) -> Option<InstanceView> {
        InstanceView::from_tracked(self.id, &self.tracked, as_of)
    }

    /// When the last event applied was recorded.
    pub fn last_recorded_at(&self) -> Option<DateTime<Utc>> {
        self.tracked.updated_at
    }
}

/// Replays instance `id` from its events, up to `at` (or to the end).
pub async fn replay(
    conn: &mut PgConnection,
    id: Uuid,
    at: Option<PointInTime>,
) -> Result<InstanceReplay, ReplayError> {
    let events = reader::aggregate_history(&mut *conn, Instance::TYPE, &id.to_string()).await?;
    if events.is_empty() {
        return Err(ReplayError::NotFound(id));
    }
    let upto = match at {
        Some(PointInTime::Position(p)) => Some(
            reader::committed_cursor_of(&mut *conn, p)
                .await?
                .ok_or(ReplayError::UnknownPosition(p))?,
        ),
        _ => None,
    };
    let included = |e: &&inferplane_store::StoredEvent| match (at, upto) {
        (Some(PointInTime::Time(t)), _) => e.recorded_at <= t,
        (_, Some(cursor)) => e.cursor() <= cursor,
        _ => true,
    };
    let mut replay = InstanceReplay {
        id,
        history: Vec::new(),
        tracked: Tracked::default(),
        position: 0,
    };
    // A prefix of the history, in sequence order: the state after it is one the aggregate had.
    for e in events.iter().take_while(included) {
        let event: InstanceEvent = e.decode().map_err(|source| ReplayError::Decode {
            position: e.position,
            source,
        })?;
        let text = summary(&event);
        replay.tracked.apply(event, e.sequence, e.recorded_at);
        let Some(state) = replay.tracked.instance.state.as_ref() else {
            continue;
        };
        replay.position = e.position;
        replay.history.push(ReplayedEvent {
            position: e.position,
            sequence: e.sequence,
            recorded_at: e.recorded_at,
            event_type: e.event_type.clone(),
            actor: actor(&e.metadata),
            status_after: state.status,
            progress_after: state.progress,
            summary: text,
        });
    }
    match (replay.history.is_empty(), at) {
        (true, Some(at)) => Err(ReplayError::NotYet { id, at }),
        (true, None) => Err(ReplayError::NotFound(id)),
        (false, _) => Ok(replay),
    }
}

/// The times of instance `id` up to version `upto` — requested, first ready, end of billing —
/// folded from its history without the log chunks (`PhaseLogged`, the bulk of a history),
/// which change neither the status nor the resources. The fold's state lacks the logged byte
/// counts: use it for the times only.
pub async fn timeline(
    conn: &mut PgConnection,
    id: Uuid,
    upto: i64,
) -> Result<Tracked, ReplayError> {
    let rows = sqlx::query(
        "select position, sequence, payload, recorded_at from events
         where aggregate_type = $1 and aggregate_id = $2 and sequence <= $3
           and event_type <> 'PhaseLogged'
         order by sequence",
    )
    .bind(Instance::TYPE)
    .bind(id.to_string())
    .bind(upto)
    .fetch_all(conn)
    .await?;
    let mut tracked = Tracked::default();
    for r in rows {
        let position: i64 = r.try_get("position")?;
        let event: InstanceEvent = serde_json::from_value(r.try_get("payload")?)
            .map_err(|source| ReplayError::Decode { position, source })?;
        tracked.apply(event, r.try_get("sequence")?, r.try_get("recorded_at")?);
    }
    Ok(tracked)
}

/// `kind:id` of the metadata's actor.
fn actor(metadata: &serde_json::Value) -> String {
    let actor = &metadata["actor"];
    match (actor["kind"].as_str(), actor["id"].as_str()) {
        (Some(kind), Some(id)) => format!("{kind}:{id}"),
        _ => "unknown".to_string(),
    }
}

/// An event's payload in a few words, for timelines and the replay table.
pub fn summary(event: &InstanceEvent) -> String {
    use InstanceEvent as E;
    match event {
        E::InstanceRequested(r) => format!(
            "{} on {} ({} x {} GB) in {}, {} GB volume, {} EUR/h",
            r.model_repo,
            r.instance_type,
            r.gpu_count,
            r.vram_per_gpu_gb,
            r.zone,
            r.data_volume_gb,
            format_micro_eur(r.hourly_price_micro_eur)
        ),
        E::ProvisioningStarted { zone, attempt } => format!("attempt {attempt} in {zone}"),
        E::ZoneChanged { from, to, reason } => format!("{from} -> {to}: {reason}"),
        E::VolumeCreated {
            volume_id,
            zone,
            size_gb,
        } => format!("{volume_id} ({size_gb} GB in {zone})"),
        E::ServerCreated {
            server_id,
            zone,
            commercial_type,
        } => format!("{server_id} ({commercial_type} in {zone})"),
        E::VolumeAttached { volume_id }
        | E::VolumeDetached { volume_id }
        | E::VolumeDeleted { volume_id } => volume_id.clone(),
        E::PowerOnRequested { attempt }
        | E::ServerAllocationFailed { attempt }
        | E::ReinstallRequested { attempt } => format!("attempt {attempt}"),
        E::ServerStarted { public_ip } => format!("public IP {public_ip}"),
        E::SshHostKeyTrusted { fingerprint } => format!("host key {fingerprint}"),
        E::PhaseStarted { name } => name.clone(),
        E::PhaseLogged {
            name,
            stream,
            chunk,
        } => {
            let stream = match stream {
                inferplane_domain::instance::LogStream::Stdout => "stdout",
                inferplane_domain::instance::LogStream::Stderr => "stderr",
            };
            format!("{name} {stream}: {} bytes", chunk.len())
        }
        E::PhaseCompleted {
            name,
            duration_ms,
            exit_code,
        } => format!("{name}: exit {exit_code} after {duration_ms} ms"),
        E::PhaseFailed {
            name,
            duration_ms,
            exit_code,
            message,
        } => {
            let exit =
                exit_code.map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}"));
            format!("{name}: {exit} after {duration_ms} ms: {message}")
        }
        E::ReadinessCheckPassed {
            check,
            duration_ms,
            detail,
        }
        | E::ReadinessCheckFailed {
            check,
            duration_ms,
            detail,
        } => format!("{} in {duration_ms} ms: {detail}", check.as_str()),
        E::InstanceUnavailable { reason } => reason.clone(),
        E::ProviderServerDeleted { server_id }
        | E::PowerOffRequested { server_id }
        | E::ServerDeleted { server_id } => server_id.clone(),
        E::InstanceFailed {
            code,
            message,
            at_status,
        } => format!("{code} while {at_status}: {message}"),
        E::TerminationRequested {
            reason,
            from_status,
        } => match reason {
            Some(r) => format!("from {from_status}: {r}"),
            None => format!("from {from_status}"),
        },
        E::WorkerRegistered {
            attempt,
            agent_version,
            ..
        } => format!("attempt {attempt}, agent {agent_version}"),
        E::WorkerHealthChanged { healthy, reason } => {
            format!(
                "{}: {reason}",
                if *healthy { "healthy" } else { "unhealthy" }
            )
        }
        E::WorkerModelsChanged { models } => models.join(", "),
        E::SshAccessible
        | E::InstallCompleted
        | E::InstanceReady
        | E::ProviderServerStopped
        | E::InstanceTerminated
        | E::DrainStarted
        | E::InstanceArchived => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::PointInTime;

    #[test]
    fn a_point_is_a_position_or_an_rfc3339_time() {
        assert_eq!("42".parse(), Ok(PointInTime::Position(42)));
        assert_eq!(" 0 ".parse(), Ok(PointInTime::Position(0)));
        let t: PointInTime = "2026-11-25T15:35:00+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-25T14:35:00Z");
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!("2026-11-25T14:35:00Z")
        );
        assert_eq!(
            serde_json::to_value(PointInTime::Position(7)).unwrap(),
            serde_json::json!(7)
        );
        for bad in [
            "",
            "-1",
            "yesterday",
            "2026-11-25",
            "99999999999999999999",
            "1e3",
        ] {
            assert!(bad.parse::<PointInTime>().is_err(), "{bad}");
        }
    }
}
