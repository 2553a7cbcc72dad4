//! Operator tools: migrations, projections, the catalog seed.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use inferplane_domain::model::{Model, ModelCommand, ModelError, ModelId, seed::seed_catalog};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_projections::RebuildProgress;
use inferplane_store::{CommandContext, CommandError, EventStore};
use sqlx::PgPool;

use crate::ConfigError;
use crate::cli::{CatalogCommand, DbArgs, ProjectionsCommand};
use crate::database::Database;

pub async fn migrate(db: DbArgs) -> anyhow::Result<()> {
    let db = Database::open(&db).await?;
    db.migrate().await?;
    println!("migrations applied");
    db.close(true).await
}

pub async fn projections(command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { db, json } => {
            let db = Database::open(&db).await?;
            let status = inferplane_projections::status(&db.pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{:<20} {:>8} {:>12} {:>12} {:>10} {:>10}",
                    "NAME", "VERSION", "POSITION", "APPLIED", "LAG", "LAG (s)"
                );
                for s in status {
                    println!(
                        "{:<20} {:>8} {:>12} {:>12} {:>10} {:>10.1}",
                        s.name,
                        s.version,
                        s.position,
                        s.events_applied,
                        s.lag_events,
                        s.lag_seconds
                    );
                }
            }
            db.close(true).await
        }
        ProjectionsCommand::Rebuild { name, db } => {
            let projection = inferplane_projections::by_name(&name).ok_or_else(|| {
                let known: Vec<_> = inferplane_projections::all()
                    .iter()
                    .map(|p| p.name())
                    .collect();
                ConfigError(format!(
                    "no projection named {name:?}; known: {}",
                    known.join(", ")
                ))
            })?;
            let db = Database::open(&db).await?;
            db.migrate().await?;
            let started = Instant::now();
            let last_print = Mutex::new(Instant::now());
            let report = |p: RebuildProgress| {
                let mut last = last_print.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed().as_millis() < 200 && p.applied < p.total {
                    return;
                }
                *last = Instant::now();
                let pct = if p.total == 0 {
                    100.0
                } else {
                    (p.applied as f64 / p.total as f64 * 100.0).min(100.0)
                };
                eprint!(
                    "\rrebuilding {name}: {}/{} events ({pct:.0}%)",
                    p.applied, p.total
                );
                let _ = std::io::stderr().flush();
            };
            let applied =
                inferplane_projections::rebuild(&db.pool, projection.as_ref(), 5_000, &report)
                    .await?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!();
            println!(
                "rebuilt {name} from {applied} events in {secs:.1} s ({:.0} events/s); now live",
                applied as f64 / secs.max(1e-9)
            );
            db.close(true).await
        }
    }
}

pub async fn catalog(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Seed(args) => {
            let db = Database::open(&args).await?;
            db.migrate().await?;
            let (registered, present) = seed(&db.pool).await?;
            println!("catalog seeded: {registered} registered, {present} already present");
            db.close(true).await
        }
    }
}

/// Registers the seed catalog; models already registered are left untouched.
/// Returns (registered, already present).
pub async fn seed(pool: &PgPool) -> anyhow::Result<(usize, usize)> {
    let store = EventStore::new(pool.clone());
    let (mut registered, mut present) = (0, 0);
    for model in seed_catalog() {
        let id = ModelId::for_repo(&model.hf_repo_id).to_string();
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("catalog-seed")));
        match store
            .execute::<Model>(&id, ModelCommand::Register(model), &(), &ctx)
            .await
        {
            Ok(_) => registered += 1,
            Err(CommandError::Rejected(ModelError::AlreadyRegistered { .. }))
            | Err(CommandError::Conflict { .. }) => present += 1,
            Err(e) => return Err(anyhow::anyhow!(e).context("seeding the catalog")),
        }
    }
    Ok((registered, present))
}
