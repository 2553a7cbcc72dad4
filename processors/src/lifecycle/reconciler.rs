//! The reconciler: the store and the provider must agree, whatever happened in between.
//!
//! Every reconcile interval, for each zone: every server and volume carrying our owner tag is
//! checked against the store. A resource whose instance is terminated or archived, or whose
//! instance never existed (once older than the grace period, since a processor may be about
//! to record it), is deleted and the deletion recorded on the zone's reconciliation record.
//! Resources of instances still being cleaned up are left to the terminator. In the other
//! direction, an instance the store thinks alive whose recorded server is missing at the
//! provider is recorded as such (it fails, and the terminator deletes what remains).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use inferplane_domain::instance::{InstanceCommand, InstanceId, InstanceState, InstanceStatus};
use inferplane_domain::reconciliation::{
    OrphanReason, Reconciliation, ReconciliationCommand, ResourceKind, reconciliation_id,
};
use inferplane_scaleway::{ListServersFilter, ListVolumesFilter, ServerAction, ServerState};
use inferplane_store::{CommandContext, StoredEvent};

use super::Lifecycle;
use crate::runtime::{Next, Processor, WakeMemory, Work};
use crate::settings::{OWNER_TAG, instance_of};

pub struct Reconciler {
    lc: Arc<Lifecycle>,
}

impl Reconciler {
    pub fn new(lc: Arc<Lifecycle>) -> Self {
        Self { lc }
    }
}

/// What one pass over a zone found.
#[derive(Debug, Default)]
struct Pass {
    servers: usize,
    volumes: usize,
    reaped: usize,
    missing: usize,
    waiting: usize,
}

#[async_trait::async_trait]
impl Processor for Reconciler {
    fn name(&self) -> &'static str {
        "reconciler"
    }

    fn wakes(&self, _event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        None
    }

    fn reads_events(&self) -> bool {
        false
    }

    fn standing_subjects(&self) -> Vec<String> {
        self.lc.zones.iter().map(|z| format!("zone:{z}")).collect()
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        let Some(zone) = work.subject.strip_prefix("zone:") else {
            return Ok(Next::Done);
        };
        if !self.lc.zones.iter().any(|z| z == zone) {
            // A zone no longer configured.
            return Ok(Next::Done);
        }
        let pass = self.reconcile(work, zone).await?;
        metrics::counter!("inferplane_reconciler_orphans_reaped_total")
            .increment(pass.reaped as u64);
        metrics::counter!("inferplane_reconciler_missing_servers_total")
            .increment(pass.missing as u64);
        if pass.reaped > 0 || pass.missing > 0 {
            tracing::warn!(zone, ?pass, "reconciliation found differences");
        } else {
            tracing::debug!(zone, ?pass, "reconciliation pass");
        }
        Ok(Next::After(self.lc.settings.reconcile_interval))
    }
}

impl Reconciler {
    async fn reconcile(&self, work: &Work, zone: &str) -> anyhow::Result<Pass> {
        let cloud = &self.lc.cloud;
        let grace = chrono::Duration::from_std(self.lc.settings.orphan_grace)?;
        let mut pass = Pass::default();
        let owned = vec![OWNER_TAG.to_string()];

        let servers = cloud
            .list_servers(
                zone,
                &ListServersFilter {
                    tags: owned.clone(),
                    ..Default::default()
                },
            )
            .await?;
        pass.servers = servers.len();
        let present: HashSet<String> = servers.iter().map(|s| s.id.clone()).collect();
        for s in &servers {
            let young = s.creation_date.is_some_and(|t| Utc::now() - t < grace);
            let Some(reason) = self.orphan_reason(instance_of(&s.tags), young).await? else {
                continue;
            };
            // Stop first (a running server cannot be deleted), then delete on a later pass.
            match s.state {
                ServerState::Stopped | ServerState::StoppedInPlace => {
                    match cloud.delete_server(zone, &s.id).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                    for v in s.volumes.values().filter(|v| v.volume_type == "sbs_volume") {
                        // Detached by the deletion; deleted on this or the next pass.
                        let _ = cloud.delete_volume(zone, &v.id).await;
                    }
                    self.report(
                        work,
                        zone,
                        ResourceKind::Server,
                        &s.id,
                        instance_of(&s.tags),
                        reason,
                    )
                    .await?;
                    pass.reaped += 1;
                }
                ServerState::Running => {
                    let _ = cloud
                        .server_action(zone, &s.id, ServerAction::Poweroff)
                        .await;
                    pass.waiting += 1;
                }
                _ => pass.waiting += 1,
            }
        }

        let volumes = cloud
            .list_volumes(
                zone,
                &ListVolumesFilter {
                    tags: owned,
                    ..Default::default()
                },
            )
            .await?;
        pass.volumes = volumes.len();
        for v in &volumes {
            let young = v.created_at.is_some_and(|t| Utc::now() - t < grace);
            let Some(reason) = self.orphan_reason(instance_of(&v.tags), young).await? else {
                continue;
            };
            match cloud.delete_volume(zone, &v.id).await {
                Ok(()) => {
                    self.report(
                        work,
                        zone,
                        ResourceKind::Volume,
                        &v.id,
                        instance_of(&v.tags),
                        reason,
                    )
                    .await?;
                    pass.reaped += 1;
                }
                Err(e) if e.is_not_found() => {}
                // Still attached to a server being stopped: next pass.
                Err(_) => pass.waiting += 1,
            }
        }

        // Instances we think alive whose server is gone.
        for (id, inst) in self.alive_in(zone).await? {
            let Some(server) = inst.live_server() else {
                continue;
            };
            if present.contains(&server.server_id) {
                continue;
            }
            // Listed before the instance recorded its server? Confirm with a direct look.
            match cloud.get_server(zone, &server.server_id).await {
                Ok(_) => continue,
                Err(e) if e.is_not_found() => {
                    self.lc
                        .record(work, id, InstanceCommand::RecordProviderServerDeleted)
                        .await?;
                    pass.missing += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(pass)
    }

    /// Why a resource tagged for `instance` is an orphan, or `None` if it is accounted for.
    async fn orphan_reason(
        &self,
        instance: Option<uuid::Uuid>,
        young: bool,
    ) -> anyhow::Result<Option<OrphanReason>> {
        let Some(id) = instance else {
            return Ok((!young).then_some(OrphanReason::Untagged));
        };
        match self.lc.load(InstanceId(id)).await? {
            None => Ok((!young).then_some(OrphanReason::UnknownInstance)),
            Some(inst) => Ok(matches!(
                inst.status,
                InstanceStatus::Terminated | InstanceStatus::Archived
            )
            .then_some(OrphanReason::InstanceTerminated)),
        }
    }

    /// Instances with a server in `zone` that the store believes exists and is running.
    async fn alive_in(&self, zone: &str) -> anyhow::Result<Vec<(InstanceId, InstanceState)>> {
        // The instances read model may lag; the aggregate decides in the end.
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "select id from rm_instances.instances
             where zone = $1 and status in ('booting', 'installing', 'starting', 'ready', 'unavailable', 'draining')",
        )
        .bind(zone)
        .fetch_all(self.lc.store.pool())
        .await?;
        let mut out = Vec::new();
        for id in ids {
            let id = InstanceId(id);
            if let Some(inst) = self.lc.load(id).await?
                && matches!(
                    inst.status,
                    InstanceStatus::Booting
                        | InstanceStatus::Installing
                        | InstanceStatus::Starting
                        | InstanceStatus::Ready
                        | InstanceStatus::Unavailable
                        | InstanceStatus::Draining
                )
            {
                out.push((id, inst));
            }
        }
        Ok(out)
    }

    async fn report(
        &self,
        work: &Work,
        zone: &str,
        kind: ResourceKind,
        resource_id: &str,
        instance_id: Option<uuid::Uuid>,
        reason: OrphanReason,
    ) -> anyhow::Result<()> {
        tracing::warn!(
            zone,
            ?kind,
            resource = resource_id,
            ?instance_id,
            ?reason,
            "orphan reaped"
        );
        let cmd = ReconciliationCommand::RecordOrphanReaped {
            kind,
            resource_id: resource_id.to_string(),
            instance_id,
            reason,
        };
        let ctx = CommandContext::new(work.metadata());
        self.lc
            .store
            .execute::<Reconciliation>(&reconciliation_id("scaleway", zone), cmd, &(), &ctx)
            .await
            .map_err(|e| anyhow::anyhow!("recording a reaped orphan: {e}"))?;
        Ok(())
    }
}
