//! The terminator: nothing billable may outlive an instance.
//!
//! For a terminating instance, and for a failed one that still holds resources, each step does
//! the next cleanup action: power the server off, wait for `stopped`, delete it, delete every
//! block volume (the data volume and the server's root disk, which Scaleway only detaches), and
//! finally confirm the termination, which the aggregate accepts only once every resource is
//! recorded deleted. Servers and volumes carrying the instance's tag but never recorded (a
//! create racing the termination) are found by tag in every zone the instance could use, and
//! deleted as well.

use std::sync::Arc;

use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceId, InstanceState, InstanceStatus,
};
use inferplane_scaleway::{
    ListServersFilter, ListVolumesFilter, ScalewayError, ServerAction, ServerState, VolumeStatus,
};
use inferplane_store::StoredEvent;

use super::{InstanceSteps, Lifecycle, drive, instance_event};
use crate::runtime::{Next, Processor, WakeMemory, Work};
use crate::settings::instance_tag;

const WAKES: &[&str] = &[
    "TerminationRequested",
    "InstanceFailed",
    "PowerOffRequested",
    "ServerDeleted",
    "VolumeDetached",
    "VolumeDeleted",
    "ProviderServerDeleted",
    // A resource recorded while terminating or failed (a create that raced the termination).
    "ServerCreated",
    "VolumeCreated",
];

pub struct Terminator {
    lc: Arc<Lifecycle>,
}

/// The instance an event asks the terminator to look at, given what the feed remembers.
fn wakes(event: &StoredEvent, memory: &mut WakeMemory) -> Option<String> {
    if event.aggregate_type != <Instance as cqrs_es::Aggregate>::TYPE {
        return None;
    }
    let id = &event.aggregate_id;
    // The memory says whether an instance is being cleaned up (terminating or failed),
    // for instances whose whole history this feed has read.
    match event.event_type.as_str() {
        "InstanceRequested" => {
            memory.set(id, false);
            None
        }
        "TerminationRequested" | "InstanceFailed" => {
            memory.set(id, true);
            Some(id.clone())
        }
        "InstanceTerminated" | "InstanceArchived" => {
            memory.forget(id);
            None
        }
        // Provisioning records resources all the time; they concern the terminator only
        // when the create raced a termination. Known not to be cleaning: nothing to do.
        "ServerCreated" | "VolumeCreated" => (memory.get(id) != Some(false)).then(|| id.clone()),
        _ => instance_event(event, WAKES),
    }
}

impl Terminator {
    pub fn new(lc: Arc<Lifecycle>) -> Self {
        Self { lc }
    }
}

#[async_trait::async_trait]
impl Processor for Terminator {
    fn name(&self) -> &'static str {
        "terminator"
    }

    fn wakes(&self, event: &StoredEvent, memory: &mut WakeMemory) -> Option<String> {
        wakes(event, memory)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        drive(self, work).await
    }
}

#[async_trait::async_trait]
impl InstanceSteps for Terminator {
    fn lifecycle(&self) -> &Lifecycle {
        &self.lc
    }

    async fn once(&self, work: &Work, id: InstanceId, inst: InstanceState) -> anyhow::Result<Next> {
        let cleaning = matches!(
            inst.status,
            InstanceStatus::Terminating | InstanceStatus::Failed
        );
        if !cleaning {
            return Ok(Next::Done);
        }
        self.clean(work, id, &inst).await
    }
}

impl Terminator {
    async fn clean(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
    ) -> anyhow::Result<Next> {
        let poll = Next::After(self.lc.settings.provider_poll_interval);
        let cloud = &self.lc.cloud;
        let tag = instance_tag(&id.0);
        let zones = zones_of(inst);

        // 1. The recorded server.
        if let Some(server) = inst.live_server().cloned() {
            match cloud.get_server(&server.zone, &server.server_id).await {
                Err(e) if e.is_not_found() => {
                    self.record(
                        work,
                        id,
                        InstanceCommand::RecordServerDeleted {
                            server_id: server.server_id.clone(),
                        },
                    )
                    .await?;
                    return Ok(Next::Done);
                }
                Err(e) => return Err(e.into()),
                Ok(s) => match s.state {
                    ServerState::Stopped | ServerState::StoppedInPlace => {
                        // Its root disk is a block volume that survives the server and carries
                        // no tag: record every block volume it has before deleting it (the
                        // provisioning may not have recorded them yet), so they are deleted next.
                        for v in s.volumes.values().filter(|v| v.volume_type == "sbs_volume") {
                            if inst.volume(&v.id).is_none() {
                                let cmd = InstanceCommand::RecordVolumeCreated {
                                    volume_id: v.id.clone(),
                                    zone: server.zone.clone(),
                                    size_gb: v
                                        .size
                                        .map(|b| (b / 1_000_000_000) as u32)
                                        .unwrap_or(20),
                                };
                                self.record(work, id, cmd).await?;
                                return Ok(Next::Done);
                            }
                        }
                        match cloud.delete_server(&server.zone, &server.server_id).await {
                            Ok(()) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e.into()),
                        }
                        self.lc.installer.release(id).await;
                        self.record(
                            work,
                            id,
                            InstanceCommand::RecordServerDeleted {
                                server_id: server.server_id.clone(),
                            },
                        )
                        .await?;
                        return Ok(Next::Done);
                    }
                    ServerState::Running | ServerState::Starting => {
                        if !server.power_off_requested || s.state == ServerState::Running {
                            match cloud
                                .server_action(
                                    &server.zone,
                                    &server.server_id,
                                    ServerAction::Poweroff,
                                )
                                .await
                            {
                                Ok(_) => {}
                                // Starting servers may refuse until they settle: look again.
                                Err(ScalewayError::PreconditionFailed { .. })
                                | Err(ScalewayError::TransientState { .. }) => return Ok(poll),
                                Err(e) => return Err(e.into()),
                            }
                            self.record(work, id, InstanceCommand::RecordPowerOffRequested)
                                .await?;
                        }
                        return Ok(poll);
                    }
                    ServerState::Stopping | ServerState::Locked | ServerState::Unknown(_) => {
                        return Ok(poll);
                    }
                },
            }
        }

        // 2. Servers carrying the tag that were never recorded.
        for zone in &zones {
            let filter = ListServersFilter {
                tags: vec![tag.clone()],
                ..Default::default()
            };
            if let Some(s) = cloud.list_servers(zone, &filter).await?.into_iter().next() {
                tracing::warn!(instance = %id, server = %s.id, zone, "deleting an unrecorded server of the instance");
                match s.state {
                    ServerState::Stopped | ServerState::StoppedInPlace => {
                        match cloud.delete_server(zone, &s.id).await {
                            Ok(()) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e.into()),
                        }
                        // Its root disk is a block volume without our tag: delete it too.
                        for v in s.volumes.values().filter(|v| v.volume_type == "sbs_volume") {
                            delete_volume_eventually(cloud, zone, &v.id).await?;
                        }
                    }
                    ServerState::Running => {
                        let _ = cloud
                            .server_action(zone, &s.id, ServerAction::Poweroff)
                            .await;
                    }
                    _ => {}
                }
                return Ok(poll);
            }
        }

        // 3. Every recorded volume, then tagged volumes never recorded.
        if let Some(v) = inst.volumes.iter().find(|v| !v.deleted) {
            match cloud.get_volume(&v.zone, &v.volume_id).await {
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
                Ok(vol) if vol.status == VolumeStatus::InUse => {
                    // Still attached to a server that is going away.
                    return Ok(poll);
                }
                Ok(_) => match cloud.delete_volume(&v.zone, &v.volume_id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(ScalewayError::PreconditionFailed { .. }) => return Ok(poll),
                    Err(e) => return Err(e.into()),
                },
            }
            self.record(
                work,
                id,
                InstanceCommand::RecordVolumeDeleted {
                    volume_id: v.volume_id.clone(),
                },
            )
            .await?;
            return Ok(Next::Done);
        }
        for zone in &zones {
            let filter = ListVolumesFilter {
                tags: vec![tag.clone()],
                ..Default::default()
            };
            for v in cloud.list_volumes(zone, &filter).await? {
                if inst.volume(&v.id).is_some_and(|r| r.deleted) || inst.volume(&v.id).is_none() {
                    tracing::warn!(instance = %id, volume = %v.id, zone, "deleting an unrecorded volume of the instance");
                    if !delete_volume_eventually(cloud, zone, &v.id).await? {
                        return Ok(poll);
                    }
                }
            }
        }

        // 4. Nothing left: confirm.
        if inst.status == InstanceStatus::Terminating {
            self.record(work, id, InstanceCommand::ConfirmTerminated)
                .await?;
        }
        self.lc.installer.release(id).await;
        // The VM is gone: so is its worker's telemetry (heartbeats were refused since the
        // termination was requested).
        sqlx::query("delete from worker_telemetry where instance_id = $1")
            .bind(id.0)
            .execute(self.lc.store.pool())
            .await?;
        Ok(Next::Done)
    }

    async fn record(
        &self,
        work: &Work,
        id: InstanceId,
        cmd: InstanceCommand,
    ) -> anyhow::Result<()> {
        self.lc.record(work, id, cmd).await.map(|_| ())
    }
}

/// Deletes a volume unless it is still attached; true when it is gone.
async fn delete_volume_eventually(
    cloud: &inferplane_scaleway::ScalewayClient,
    zone: &str,
    volume_id: &str,
) -> Result<bool, ScalewayError> {
    match cloud.delete_volume(zone, volume_id).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(true),
        Err(ScalewayError::PreconditionFailed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every zone the instance may have resources in.
fn zones_of(inst: &InstanceState) -> Vec<String> {
    let mut zones = vec![inst.zone.clone()];
    for z in inst
        .allowed_zones
        .iter()
        .chain(inst.volumes.iter().map(|v| &v.zone))
        .chain(inst.server.iter().map(|s| &s.zone))
    {
        if !zones.contains(z) {
            zones.push(z.clone());
        }
    }
    zones
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            position: 1,
            transaction_id: 1,
            aggregate_type: "instance".into(),
            aggregate_id: id.into(),
            sequence: 1,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: serde_json::json!({}).into(),
            metadata: serde_json::json!({}).into(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn resources_wake_the_terminator_only_when_they_may_concern_it() {
        let mut memory = WakeMemory::default();
        let woken = |m: &mut WakeMemory, id: &str, t: &str| wakes(&event(id, t), m).is_some();

        // Seen from its request and not cleaning up: provisioning's records are not its business.
        assert!(!woken(&mut memory, "a", "InstanceRequested"));
        assert!(!woken(&mut memory, "a", "VolumeCreated"));
        assert!(!woken(&mut memory, "a", "ServerCreated"));
        // A termination wakes it, and so does a create that raced it.
        assert!(woken(&mut memory, "a", "TerminationRequested"));
        assert!(woken(&mut memory, "a", "ServerCreated"));
        assert!(woken(&mut memory, "a", "VolumeDeleted"));
        // Once terminated, it is forgotten.
        assert!(!woken(&mut memory, "a", "InstanceTerminated"));
        assert!(memory.is_empty());

        // An instance whose request this feed did not read (it started leading later) could
        // be cleaning up: its resources always wake the terminator.
        assert!(woken(&mut memory, "b", "ServerCreated"));
        // A failure counts as cleaning up.
        assert!(!woken(&mut memory, "c", "InstanceRequested"));
        assert!(woken(&mut memory, "c", "InstanceFailed"));
        assert!(woken(&mut memory, "c", "VolumeCreated"));
        // Other aggregates never wake it.
        let mut other = event("m", "TerminationRequested");
        other.aggregate_type = "model".into();
        assert!(wakes(&other, &mut memory).is_none());
    }
}
