//! Operator tools: migrations, projections, the catalog seed.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use cqrs_es::Aggregate;
use inferplane_domain::catalog::seed::{seed_instance_types, seed_zones};
use inferplane_domain::catalog::{
    CatalogError, InstanceType, InstanceTypeCommand, InstanceTypeId, Zone, ZoneCommand, ZoneId,
};
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
            let r = seed(&db.pool).await?;
            println!(
                "catalog seeded: {} registered, {} already present \
                 ({} models, {} zones, {} instance types registered)",
                r.registered(),
                r.present(),
                r.models.0,
                r.zones.0,
                r.instance_types.0
            );
            db.close(true).await
        }
    }
}

/// What a seed did, per kind: (registered, already present).
#[derive(Debug, Default)]
pub struct SeedReport {
    pub models: (usize, usize),
    pub zones: (usize, usize),
    pub instance_types: (usize, usize),
}

impl SeedReport {
    pub fn registered(&self) -> usize {
        self.models.0 + self.zones.0 + self.instance_types.0
    }

    pub fn present(&self) -> usize {
        self.models.1 + self.zones.1 + self.instance_types.1
    }
}

/// Registers the seed catalog (models, then zones, then instance types, whose availability
/// names the zones); whatever is already registered is left untouched.
pub async fn seed(pool: &PgPool) -> anyhow::Result<SeedReport> {
    let store = EventStore::new(pool.clone());
    let models = seed_catalog().into_iter().map(|m| {
        let id = ModelId::for_repo(&m.hf_repo_id).to_string();
        (id, ModelCommand::Register(m))
    });
    let zones = seed_zones().into_iter().map(|z| {
        let id = ZoneId::new(z.provider, &z.code).0.to_string();
        (id, ZoneCommand::Register(z))
    });
    let types = seed_instance_types().into_iter().map(|t| {
        let id = InstanceTypeId::new(t.provider, &t.code).0.to_string();
        (id, InstanceTypeCommand::Register(t))
    });
    Ok(SeedReport {
        models: register_all::<Model>(&store, models, |e| {
            matches!(e, ModelError::AlreadyRegistered { .. })
        })
        .await?,
        zones: register_all::<Zone>(&store, zones, |e| {
            matches!(e, CatalogError::ZoneAlreadyRegistered { .. })
        })
        .await?,
        instance_types: register_all::<InstanceType>(&store, types, |e| {
            matches!(e, CatalogError::TypeAlreadyRegistered { .. })
        })
        .await?,
    })
}

/// Executes registrations; a refusal because the aggregate exists (or a concurrent seed got
/// there first) counts as already present. Returns (registered, already present).
async fn register_all<A: Aggregate<Services = ()>>(
    store: &EventStore,
    commands: impl IntoIterator<Item = (String, A::Command)>,
    already_registered: impl Fn(&A::Error) -> bool,
) -> anyhow::Result<(usize, usize)>
where
    A::Command: Clone,
{
    let (mut registered, mut present) = (0, 0);
    for (id, command) in commands {
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("catalog-seed")));
        match store.execute::<A>(&id, command, &(), &ctx).await {
            Ok(_) => registered += 1,
            Err(CommandError::Rejected(e)) if already_registered(&e) => present += 1,
            Err(CommandError::Conflict { .. }) => present += 1,
            Err(e) => return Err(anyhow::anyhow!(e.to_string()).context("seeding the catalog")),
        }
    }
    Ok((registered, present))
}
