//! Provisioning: from a request to a running server with a public IP.
//!
//! Each step does the next missing thing and records it, so the recorded event wakes the next
//! step: start provisioning, the data volume (sized from the model), the server (tagged with
//! the instance), the volumes the server came with (its root disk is a block volume that
//! outlives the server unless deleted), attaching the data volume, power-on, and waiting for
//! `running` with an IP. A server that falls back to `stopped` after a power-on is a silent
//! allocation failure: recorded, then powered on again, a bounded number of times.
//!
//! Before creating a volume or a server the step lists the zone's resources carrying the
//! instance's tag: a step repeated after a crash (or after a create whose answer was lost)
//! adopts what the first run made. Out of stock in one zone moves the request to the next of
//! its allowed zones (after deleting the volume made in the first one); quota, credentials and
//! invalid requests fail the instance with a typed reason.

use std::sync::Arc;

use inferplane_domain::instance::{
    FailureCode, InstanceCommand, InstanceId, InstanceState, InstanceStatus,
};
use inferplane_scaleway::{
    CreateServerRequest, CreateVolumeRequest, ListServersFilter, ListVolumesFilter, ScalewayError,
    Server, ServerAction, ServerState, VolumeStatus, VolumeTemplate,
};
use inferplane_store::StoredEvent;

use super::{InstanceSteps, Lifecycle, Recorded, drive, instance_event};
use crate::runtime::{Next, Processor, WakeMemory, Work};
use crate::settings::{OWNER_TAG, instance_tag};

const GB: u64 = 1_000_000_000;
/// Root disk of a new server (a block volume on types without local storage).
const ROOT_DISK_GB: u64 = 20;

const WAKES: &[&str] = &[
    "InstanceRequested",
    "ProvisioningStarted",
    "ZoneChanged",
    "VolumeCreated",
    "ServerCreated",
    "VolumeAttached",
    "PowerOnRequested",
    "ServerAllocationFailed",
];

pub struct Provisioning {
    lc: Arc<Lifecycle>,
}

impl Provisioning {
    pub fn new(lc: Arc<Lifecycle>) -> Self {
        Self { lc }
    }
}

#[async_trait::async_trait]
impl Processor for Provisioning {
    fn name(&self) -> &'static str {
        "provisioning"
    }

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        instance_event(event, WAKES)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        drive(self, work).await
    }
}

#[async_trait::async_trait]
impl InstanceSteps for Provisioning {
    fn lifecycle(&self) -> &Lifecycle {
        &self.lc
    }

    async fn once(&self, work: &Work, id: InstanceId, inst: InstanceState) -> anyhow::Result<Next> {
        match inst.status {
            InstanceStatus::Requested => {
                let cmd = InstanceCommand::StartProvisioning {
                    zone: inst.zone.clone(),
                    attempt: inst.provisioning_attempts + 1,
                };
                self.lc.record(work, id, cmd).await?;
                return Ok(Next::Done);
            }
            InstanceStatus::Provisioning => {}
            _ => return Ok(Next::Done),
        }
        let next = match self.advance(work, id, &inst).await {
            Ok(next) => next,
            Err(e) => return self.provider_error(work, id, &inst, e).await,
        };
        // Waiting on the provider: give up past the provisioning timeout. (Measured from the
        // history, only when waiting, so the common path costs no extra query.)
        if next != Next::Done {
            let elapsed = self
                .lc
                .time_since(id, &["ProvisioningStarted", "ZoneChanged"])
                .await?
                .unwrap_or_default();
            if elapsed > self.lc.settings.provisioning_timeout {
                let message = format!(
                    "no running server after {} s",
                    self.lc.settings.provisioning_timeout.as_secs()
                );
                self.lc
                    .fail(work, id, FailureCode::ProviderStartTimeout, message)
                    .await?;
                return Ok(Next::Done);
            }
        }
        Ok(next)
    }
}

/// What went wrong while provisioning: the provider, or the store.
enum StepError {
    Provider(ScalewayError),
    Other(anyhow::Error),
}

impl From<ScalewayError> for StepError {
    fn from(e: ScalewayError) -> Self {
        Self::Provider(e)
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl Provisioning {
    /// Does the next missing thing.
    async fn advance(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
    ) -> Result<Next, StepError> {
        let cloud = &self.lc.cloud;
        let zone = inst.zone.as_str();
        let tag = instance_tag(&id.0);

        // 1. The data volume, in the current zone.
        let data_volume = inst
            .volumes
            .iter()
            .find(|v| !v.deleted && v.zone == inst.zone && v.size_gb == inst.data_volume_gb);
        let Some(data_volume) = data_volume else {
            let filter = ListVolumesFilter {
                tags: vec![tag.clone()],
                ..Default::default()
            };
            let existing = cloud.list_volumes(zone, &filter).await?;
            let volume = match existing.into_iter().next() {
                Some(v) => v,
                None => {
                    let request = CreateVolumeRequest {
                        name: format!("inferplane-{}-data", short(&id)),
                        project_id: None,
                        size: u64::from(inst.data_volume_gb) * GB,
                        perf_iops: None,
                        tags: vec![OWNER_TAG.to_string(), tag.clone()],
                    };
                    cloud.create_volume(zone, &request).await?
                }
            };
            let cmd = InstanceCommand::RecordVolumeCreated {
                volume_id: volume.id.clone(),
                zone: zone.to_string(),
                size_gb: inst.data_volume_gb,
            };
            self.record_or_clean(work, id, cmd, Orphan::Volume(zone, &volume.id))
                .await?;
            return Ok(Next::Done);
        };
        let data_volume_id = data_volume.volume_id.clone();
        let data_attached = data_volume.attached;

        // 2. The server.
        let Some(server_rec) = inst.live_server().cloned() else {
            let filter = ListServersFilter {
                tags: vec![tag.clone()],
                ..Default::default()
            };
            let existing = cloud.list_servers(zone, &filter).await?;
            let server = match existing.into_iter().next() {
                Some(s) => s,
                None => {
                    let request = CreateServerRequest::new(
                        format!("inferplane-{}", short(&id)),
                        inst.instance_type.clone(),
                        self.lc.settings.image.clone(),
                    )
                    .volume(0, VolumeTemplate::sbs(ROOT_DISK_GB * GB))
                    .tag(OWNER_TAG)
                    .tag(tag.clone());
                    cloud.create_server(zone, &request).await?
                }
            };
            let cmd = InstanceCommand::RecordServerCreated {
                server_id: server.id.clone(),
                zone: zone.to_string(),
                commercial_type: server.commercial_type.clone(),
            };
            self.record_or_clean(work, id, cmd, Orphan::Server(zone, &server))
                .await?;
            return Ok(Next::Done);
        };
        let server_id = server_rec.server_id.clone();

        let server = match cloud.get_server(zone, &server_id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                self.lc
                    .record(work, id, InstanceCommand::RecordProviderServerDeleted)
                    .await?;
                return Ok(Next::Done);
            }
            Err(e) => return Err(e.into()),
        };

        // 3. The block volumes the server came with (its root disk): recorded, so that the
        //    terminator deletes them too.
        for v in server.volumes.values() {
            if v.volume_type == "sbs_volume" && inst.volume(&v.id).is_none() {
                let cmd = InstanceCommand::RecordVolumeCreated {
                    volume_id: v.id.clone(),
                    zone: zone.to_string(),
                    size_gb: v
                        .size
                        .map(|b| (b / GB) as u32)
                        .unwrap_or(ROOT_DISK_GB as u32),
                };
                self.lc.record(work, id, cmd).await?;
                let cmd = InstanceCommand::RecordVolumeAttached {
                    volume_id: v.id.clone(),
                };
                self.lc.record(work, id, cmd).await?;
                return Ok(Next::Done);
            }
        }

        // 4. The data volume on the server.
        if !data_attached {
            let on_server = server.volumes.values().any(|v| v.id == data_volume_id);
            if !on_server {
                // A volume still being created cannot be attached yet: look again shortly
                // rather than having the call fail and back off.
                let volume = cloud.get_volume(zone, &data_volume_id).await?;
                if volume.status != VolumeStatus::Available {
                    return Ok(Next::After(self.lc.settings.provider_poll_interval));
                }
                match cloud.attach_volume(zone, &server_id, &data_volume_id).await {
                    Ok(_) => {}
                    // The volume is still being created: look again shortly.
                    Err(ScalewayError::TransientState { .. }) => {
                        return Ok(Next::After(self.lc.settings.provider_poll_interval));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let cmd = InstanceCommand::RecordVolumeAttached {
                volume_id: data_volume_id,
            };
            self.lc.record(work, id, cmd).await?;
            return Ok(Next::Done);
        }

        // 5. Power-on, and waiting for running with an IP.
        let poll = Next::After(self.lc.settings.provider_poll_interval);
        match server.state {
            ServerState::Running => match server.public_address() {
                Some(ip) => {
                    if inst.power_on_attempts == 0 {
                        // Powered on by a run that crashed before recording it.
                        let cmd = InstanceCommand::RecordPowerOnRequested { attempt: 1 };
                        self.lc.record(work, id, cmd).await?;
                    }
                    let cmd = InstanceCommand::RecordServerRunning {
                        public_ip: ip.to_string(),
                    };
                    self.lc.record(work, id, cmd).await?;
                    Ok(Next::Done)
                }
                None => Ok(poll),
            },
            ServerState::Starting | ServerState::Stopping => {
                if inst.power_on_attempts == 0 && server.state == ServerState::Starting {
                    let cmd = InstanceCommand::RecordPowerOnRequested { attempt: 1 };
                    self.lc.record(work, id, cmd).await?;
                }
                Ok(poll)
            }
            ServerState::Stopped | ServerState::StoppedInPlace => {
                let attempts = inst.power_on_attempts;
                if attempts > 0 && inst.allocation_failed_attempt < attempts {
                    // Asked to start, and back to stopped: the GPU could not be allocated.
                    let cmd = InstanceCommand::RecordAllocationFailed { attempt: attempts };
                    self.lc.record(work, id, cmd).await?;
                    return Ok(Next::Done);
                }
                if attempts >= self.lc.settings.max_power_on_attempts {
                    let message = format!(
                        "the server did not start after {attempts} power-on attempts (allocation failed)"
                    );
                    self.lc
                        .fail(work, id, FailureCode::ProviderStartFailed, message)
                        .await?;
                    return Ok(Next::Done);
                }
                match cloud
                    .server_action(zone, &server_id, ServerAction::Poweron)
                    .await
                {
                    Ok(_) => {}
                    // Already starting (a power-on whose answer was lost): just record it.
                    Err(ScalewayError::PreconditionFailed { .. })
                    | Err(ScalewayError::TransientState { .. }) => return Ok(poll),
                    Err(e) => return Err(e.into()),
                }
                let cmd = InstanceCommand::RecordPowerOnRequested {
                    attempt: attempts + 1,
                };
                self.lc.record(work, id, cmd).await?;
                Ok(Next::Done)
            }
            ServerState::Locked => {
                self.lc
                    .fail(
                        work,
                        id,
                        FailureCode::ProviderStartFailed,
                        "the server is locked by the provider".to_string(),
                    )
                    .await?;
                Ok(Next::Done)
            }
            ServerState::Unknown(_) => Ok(poll),
        }
    }

    /// Records the creation of a resource; if the instance no longer accepts it (terminated
    /// meanwhile), deletes the resource at once so nothing is left to bill.
    async fn record_or_clean(
        &self,
        work: &Work,
        id: InstanceId,
        cmd: InstanceCommand,
        made: Orphan<'_>,
    ) -> Result<(), StepError> {
        match self.lc.record(work, id, cmd).await? {
            Recorded::Accepted(_) => Ok(()),
            Recorded::Refused(reason) => {
                tracing::warn!(instance = %id, %reason, "instance moved on while a resource was made; deleting it");
                match made {
                    Orphan::Volume(zone, volume_id) => {
                        match self.lc.cloud.delete_volume(zone, volume_id).await {
                            Ok(()) => Ok(()),
                            Err(e) if e.is_not_found() => Ok(()),
                            Err(e) => Err(e.into()),
                        }
                    }
                    Orphan::Server(zone, server) => {
                        // A new server is stopped and can be deleted right away; its root
                        // volume goes with a later reconciliation pass if it outlives it.
                        match self.lc.cloud.delete_server(zone, &server.id).await {
                            Ok(()) => Ok(()),
                            Err(e) if e.is_not_found() => Ok(()),
                            Err(e) => Err(e.into()),
                        }
                    }
                }
            }
        }
    }

    /// Maps a provider error to what the instance should do.
    async fn provider_error(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
        error: StepError,
    ) -> anyhow::Result<Next> {
        let e = match error {
            StepError::Other(e) => return Err(e),
            StepError::Provider(e) => e,
        };
        let (code, message) = match &e {
            ScalewayError::OutOfStock { .. } => {
                if let Some(next) = next_zone(inst) {
                    self.change_zone(work, id, inst, next, &e).await?;
                    return Ok(Next::Done);
                }
                (FailureCode::ProviderOutOfStock, e.to_string())
            }
            ScalewayError::QuotasExceeded { .. } => {
                (FailureCode::ProviderQuotaExceeded, e.to_string())
            }
            ScalewayError::DeniedAuthentication { .. }
            | ScalewayError::PermissionsDenied { .. } => {
                (FailureCode::MissingProviderCredentials, e.to_string())
            }
            ScalewayError::InvalidArguments { .. } => {
                (FailureCode::ProviderCreateFailed, e.to_string())
            }
            _ if work.failures + 1 >= self.lc.settings.max_provider_errors as i32 => (
                FailureCode::ProviderError,
                format!(
                    "{} failed provider calls in a row, last: {e}",
                    work.failures + 1
                ),
            ),
            // Transient: the runner retries with backoff.
            _ => return Err(anyhow::Error::new(e).context("provisioning")),
        };
        self.lc.fail(work, id, code, message).await?;
        Ok(Next::Done)
    }

    /// Out of stock here: clean up this zone's volume, then move to the next allowed zone.
    async fn change_zone(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
        to: String,
        cause: &ScalewayError,
    ) -> anyhow::Result<()> {
        for v in inst
            .volumes
            .iter()
            .filter(|v| !v.deleted && v.zone == inst.zone)
        {
            match self.lc.cloud.delete_volume(&v.zone, &v.volume_id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context("deleting a volume before a zone change")
                    );
                }
            }
            let cmd = InstanceCommand::RecordVolumeDeleted {
                volume_id: v.volume_id.clone(),
            };
            self.lc.record(work, id, cmd).await?;
        }
        let cmd = InstanceCommand::ChangeZone {
            to,
            reason: format!("out of stock in {}: {cause}", inst.zone),
        };
        self.lc.record(work, id, cmd).await?;
        Ok(())
    }
}

/// A resource just made at the provider.
enum Orphan<'a> {
    Volume(&'a str, &'a str),
    Server(&'a str, &'a Server),
}

/// The allowed zone after the current one, if any (only before a server exists).
fn next_zone(inst: &InstanceState) -> Option<String> {
    if inst.live_server().is_some() {
        return None;
    }
    let pos = inst.allowed_zones.iter().position(|z| *z == inst.zone)?;
    inst.allowed_zones.get(pos + 1).cloned()
}

/// The first 8 hex digits of the id, for resource names.
fn short(id: &InstanceId) -> String {
    id.0.simple().to_string()[..8].to_string()
}
