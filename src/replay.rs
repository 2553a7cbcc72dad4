//! `inferplane replay instance <id> [--at <time|position>] [--json]`: the auditor's view of
//! one instance, computed from the event log alone (never from a read model): every event
//! with who caused it and what it left behind, then the instance as it stood at the end, or
//! at `--at`.
//!
//! Exit codes: 2 for a malformed id or `--at` (usage), 1 with a one-line reason for an
//! instance that does not exist (or did not exist yet at `--at`).

use std::io::Write;

use chrono::{DateTime, Utc};
use inferplane_projections::instances::{
    InstanceReplay, InstanceView, PointInTime, ReplayError, ReplayedEvent, replay,
};
use uuid::Uuid;

use crate::ConfigError;
use crate::cli::{ReplayCommand, ReplayInstanceArgs};
use crate::database::Database;

/// Summaries longer than this are cut in the table (`--json` has them whole).
const SUMMARY_CHARS: usize = 72;

pub async fn run(command: ReplayCommand) -> anyhow::Result<()> {
    match command {
        ReplayCommand::Instance(args) => instance(args).await,
    }
}

async fn instance(args: ReplayInstanceArgs) -> anyhow::Result<()> {
    let id: Uuid = args.id.trim().parse().map_err(|_| {
        let shown: String = args.id.chars().take(64).collect();
        ConfigError(format!("{shown:?} is not an instance id (a UUID)"))
    })?;
    let at = args
        .at
        .as_deref()
        .map(str::parse::<PointInTime>)
        .transpose()
        .map_err(|e| ConfigError(format!("--at: {e}")))?;
    let db = Database::open(&args.db).await?;
    let replayed = match db.pool.acquire().await {
        Ok(mut conn) => replay(&mut conn, id, at).await.map_err(explain),
        Err(e) => Err(e.into()),
    };
    db.close(true).await?;
    let replayed = replayed?;
    let as_of = match at {
        Some(PointInTime::Time(t)) => t,
        Some(PointInTime::Position(_)) => replayed.last_recorded_at().unwrap_or_else(Utc::now),
        None => Utc::now(),
    };
    let view = replayed
        .view(as_of)
        .ok_or_else(|| anyhow::anyhow!("no instance {id}"))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "history": replayed.history, "state": view });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print_table(&mut out, &replayed.history)?;
        writeln!(out)?;
        print_state(&mut out, &replayed, &view, at)?;
    }
    out.flush()?;
    Ok(())
}

/// One-line reasons for what an operator can act on.
fn explain(e: ReplayError) -> anyhow::Error {
    match e {
        ReplayError::Store(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01") => {
            anyhow::anyhow!("this database has no event store (run `inferplane migrate` first)")
        }
        e => e.into(),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

fn cut(text: &str, chars: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= chars {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

fn print_table(out: &mut impl Write, history: &[ReplayedEvent]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>9} {:<24} {:<22} {:<22} {:<12} {:>4}  SUMMARY",
        "POSITION", "TIME", "EVENT", "ACTOR", "STATUS", "PROG"
    )?;
    for e in history {
        writeln!(
            out,
            "{:>9} {:<24} {:<22} {:<22} {:<12} {:>3}%  {}",
            e.position,
            time(e.recorded_at),
            e.event_type,
            cut(&e.actor, 22),
            e.status_after.as_str(),
            e.progress_after,
            cut(&e.summary, SUMMARY_CHARS)
        )?;
    }
    Ok(())
}

fn print_state(
    out: &mut impl Write,
    r: &InstanceReplay,
    v: &InstanceView,
    at: Option<PointInTime>,
) -> std::io::Result<()> {
    let s = &v.instance;
    match at {
        Some(at) => writeln!(out, "instance {} at {at}:", v.id)?,
        None => writeln!(out, "instance {}:", v.id)?,
    }
    writeln!(
        out,
        "  status    {} ({}%), version {}, position {}, {} events",
        s.status,
        s.progress,
        v.version,
        r.position,
        r.history.len()
    )?;
    writeln!(out, "  model     {} ({})", s.model_repo, s.model_id)?;
    writeln!(
        out,
        "  placement {} in {} ({} x {} GB), {} EUR/h, vLLM {}",
        s.instance_type,
        s.zone,
        s.gpu_count,
        s.vram_per_gpu_gb,
        v.hourly_price_eur,
        s.vllm_mode.as_str()
    )?;
    match &s.server {
        Some(srv) => writeln!(
            out,
            "  server    {}{} ({})",
            srv.server_id,
            if srv.deleted { " (deleted)" } else { "" },
            s.public_ip.as_deref().unwrap_or("no public IP")
        )?,
        None => writeln!(out, "  server    none")?,
    }
    if s.volumes.is_empty() {
        writeln!(out, "  volumes   none")?;
    }
    for vol in &s.volumes {
        let state = match (vol.deleted, vol.attached) {
            (true, _) => "deleted",
            (false, true) => "attached",
            (false, false) => "detached",
        };
        writeln!(
            out,
            "  volume    {} ({} GB in {}, {state})",
            vol.volume_id, vol.size_gb, vol.zone
        )?;
    }
    if let Some(f) = &s.failure {
        writeln!(
            out,
            "  failure   {} while {}: {}",
            f.code,
            f.at_status,
            cut(&f.message, SUMMARY_CHARS)
        )?;
    }
    writeln!(out, "  requested {}", time(v.requested_at))?;
    if let Some(t) = v.ready_at {
        writeln!(out, "  ready     {}", time(t))?;
    }
    match v.terminated_at {
        Some(t) => writeln!(
            out,
            "  cost      {} EUR (billing ended {})",
            v.cost_eur,
            time(t)
        )?,
        None => writeln!(out, "  cost      {} EUR so far", v.cost_eur)?,
    }
    Ok(())
}
