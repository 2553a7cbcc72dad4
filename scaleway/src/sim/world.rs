//! The simulator's in-memory world: servers, block volumes, IPs, faults and call counters,
//! behind one mutex (never held across an `.await`), and how each object renders as JSON.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};

use super::config::Settings;
use super::faults::Faults;
use super::views::{
    IpView, PublicIpView, ReferenceView, SecurityGroupView, ServerRefView, ServerView,
    ServerVolumeView, SimSnapshot, SpecsView, VolumeView,
};

/// State shared by the HTTP handlers, the lifecycle tasks and the [`super::SimHandle`].
pub(crate) struct Shared {
    pub settings: Settings,
    world: Mutex<World>,
}

impl Shared {
    pub fn new(settings: Settings) -> Arc<Self> {
        let world = World::new(settings.initial_faults.clone());
        Arc::new(Self {
            settings,
            world: Mutex::new(world),
        })
    }

    /// Locks the world. A panic while holding the lock cannot leave it half-updated in a way
    /// that matters for a test double, so poisoning is ignored.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> SimSnapshot {
        let world = self.world();
        let mut servers: Vec<&SimServer> = world.servers.values().collect();
        servers.sort_by_key(|s| s.seq);
        let mut volumes: Vec<&SimVolume> = world.volumes.values().collect();
        volumes.sort_by_key(|v| v.seq);
        let mut ips: Vec<&SimIp> = world.ips.values().collect();
        ips.sort_by_key(|i| i.seq);
        SimSnapshot {
            servers: servers.into_iter().map(|s| world.server_view(s)).collect(),
            volumes: volumes.into_iter().map(|v| world.volume_view(v)).collect(),
            ips: ips.into_iter().map(|i| world.ip_view(i)).collect(),
            calls: world.calls.clone(),
            actions: world.actions.clone(),
            faults: world.faults.clone(),
            ip_pool: self.settings.pool.to_string(),
        }
    }

    /// Empties the world and restores the initial faults.
    pub fn reset(&self) {
        *self.world() = World::new(self.settings.initial_faults.clone());
    }
}

/// Server lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SrvState {
    Stopped,
    StoppedInPlace,
    Starting,
    Running,
    Stopping,
}

impl SrvState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::StoppedInPlace => "stopped in place",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "stopped" => Self::Stopped,
            "stopped in place" => Self::StoppedInPlace,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            _ => return None,
        })
    }

    /// `allowed_actions` in this state.
    pub fn allowed_actions(self) -> &'static [&'static str] {
        match self {
            Self::Stopped => &["poweron", "backup"],
            Self::StoppedInPlace => &["poweron", "poweroff", "terminate", "backup"],
            Self::Running => &["poweroff", "terminate", "reboot", "stop_in_place", "backup"],
            Self::Starting | Self::Stopping => &[],
        }
    }
}

/// A volume attached to a server.
#[derive(Debug, Clone)]
pub(crate) enum AttachedVolume {
    /// A local SSD: lives and dies with the server.
    Local { id: String, name: String, size: u64 },
    /// A Block Storage volume (id into [`World::volumes`]).
    Block { id: String },
}

impl AttachedVolume {
    pub fn id(&self) -> &str {
        match self {
            Self::Local { id, .. } | Self::Block { id } => id,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SimServer {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub project: String,
    pub organization: String,
    pub commercial_type: String,
    pub state: SrvState,
    pub state_detail: String,
    pub tags: Vec<String>,
    pub image: Option<(String, String)>,
    pub volumes: BTreeMap<u32, AttachedVolume>,
    pub dynamic_ip_required: bool,
    pub boot_type: String,
    pub security_group: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub seq: u64,
    /// Bumped by every state change that starts or cancels a transition; a lifecycle task only
    /// applies its next step while the generation it started with is current.
    pub generation: u64,
    pub user_data: BTreeMap<String, String>,
}

/// Block volume status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VolStatus {
    Creating,
    Available,
    InUse,
}

impl VolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
            Self::InUse => "in_use",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub server_id: String,
    pub reference_id: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct SimVolume {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub project_id: String,
    pub size: u64,
    pub perf_iops: u32,
    pub status: VolStatus,
    pub tags: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub attachment: Option<Attachment>,
    pub last_detached_at: Option<DateTime<Utc>>,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SimIp {
    pub id: String,
    pub zone: String,
    pub address: Ipv4Addr,
    pub project: String,
    pub organization: String,
    /// Dynamic IPs come and go with a server's node; flexible ones are created by `POST /ips`.
    pub dynamic: bool,
    pub server: Option<String>,
    /// Attached and visible on the server (a dynamic IP is reserved at poweron and attached
    /// once the server runs).
    pub attached: bool,
    pub tags: Vec<String>,
    pub seq: u64,
}

/// Everything the simulator holds.
pub(crate) struct World {
    pub servers: BTreeMap<String, SimServer>,
    pub volumes: BTreeMap<String, SimVolume>,
    pub ips: BTreeMap<String, SimIp>,
    pub faults: Faults,
    pub calls: BTreeMap<String, u64>,
    pub actions: BTreeMap<String, u64>,
    next_seq: u64,
}

/// RFC 3339 with microseconds and `+00:00`, as Scaleway writes dates.
pub(crate) fn fmt_date(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Micros, false)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl World {
    fn new(faults: Faults) -> Self {
        Self {
            servers: BTreeMap::new(),
            volumes: BTreeMap::new(),
            ips: BTreeMap::new(),
            faults,
            calls: BTreeMap::new(),
            actions: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// A monotonic sequence number: creation order, and the tie-break of list ordering.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn count_call(&mut self, operation: &str) {
        *self.calls.entry(operation.to_string()).or_default() += 1;
    }

    /// The server `id` in `zone` (a server of another zone is not found, as in the real API).
    pub fn server_in(&self, zone: &str, id: &str) -> Option<&SimServer> {
        self.servers.get(id).filter(|s| s.zone == zone)
    }

    pub fn server_in_mut(&mut self, zone: &str, id: &str) -> Option<&mut SimServer> {
        self.servers.get_mut(id).filter(|s| s.zone == zone)
    }

    /// The first free address of the pool.
    pub fn free_address(&self, settings: &Settings) -> Option<Ipv4Addr> {
        let used: HashSet<Ipv4Addr> = self.ips.values().map(|ip| ip.address).collect();
        settings.pool.hosts().find(|a| !used.contains(a))
    }

    /// Releases the dynamic IPs of a server and detaches its flexible ones.
    pub fn release_ips(&mut self, server_id: &str, keep_flexible: bool) {
        self.ips
            .retain(|_, ip| !(ip.dynamic && ip.server.as_deref() == Some(server_id)));
        if !keep_flexible {
            for ip in self.ips.values_mut() {
                if ip.server.as_deref() == Some(server_id) {
                    ip.server = None;
                    ip.attached = false;
                }
            }
        }
    }

    /// Removes a server: local volumes vanish, block volumes are detached (and keep costing
    /// money until deleted), dynamic IPs are released, flexible IPs detached.
    pub fn remove_server(&mut self, server_id: &str) -> Option<SimServer> {
        let server = self.servers.remove(server_id)?;
        let now = Utc::now();
        for attached in server.volumes.values() {
            if let AttachedVolume::Block { id } = attached
                && let Some(volume) = self.volumes.get_mut(id)
            {
                detach_block(volume, now);
            }
        }
        self.release_ips(server_id, false);
        Some(server)
    }

    /// Stops a server at once (behind the caller's back): cancels its transition and releases
    /// its dynamic IP.
    pub fn force_stop(&mut self, server_id: &str) -> bool {
        let Some(server) = self.servers.get_mut(server_id) else {
            return false;
        };
        server.state = SrvState::Stopped;
        server.state_detail.clear();
        server.generation += 1;
        server.modified = Utc::now();
        self.release_ips(server_id, true);
        true
    }

    pub fn server_view(&self, server: &SimServer) -> ServerView {
        let public_ips: Vec<PublicIpView> = self
            .ips
            .values()
            .filter(|ip| ip.attached && ip.server.as_deref() == Some(server.id.as_str()))
            .map(|ip| PublicIpView {
                id: ip.id.clone(),
                address: ip.address.to_string(),
                gateway: None,
                netmask: "32".to_string(),
                family: "inet".to_string(),
                dynamic: ip.dynamic,
                provisioning_mode: "dhcp".to_string(),
                tags: ip.tags.clone(),
                state: "attached".to_string(),
            })
            .collect();
        let volumes = server
            .volumes
            .iter()
            .map(|(index, attached)| {
                let view = match attached {
                    AttachedVolume::Local { id, name, size } => ServerVolumeView {
                        id: id.clone(),
                        name: Some(name.clone()),
                        volume_type: "l_ssd".to_string(),
                        size: Some(*size),
                        state: "available".to_string(),
                        boot: *index == 0,
                        zone: server.zone.clone(),
                    },
                    AttachedVolume::Block { id } => ServerVolumeView {
                        id: id.clone(),
                        name: None,
                        volume_type: "sbs_volume".to_string(),
                        size: None,
                        state: self
                            .volumes
                            .get(id)
                            .map(|v| v.status.as_str())
                            .unwrap_or("available")
                            .to_string(),
                        boot: *index == 0,
                        zone: server.zone.clone(),
                    },
                };
                (index.to_string(), view)
            })
            .collect();
        ServerView {
            id: server.id.clone(),
            name: server.name.clone(),
            arch: "x86_64".to_string(),
            commercial_type: server.commercial_type.clone(),
            boot_type: server.boot_type.clone(),
            organization: server.organization.clone(),
            project: server.project.clone(),
            hostname: server.name.clone(),
            image: server
                .image
                .as_ref()
                .map(|(id, name)| super::views::ImageView {
                    id: id.clone(),
                    name: name.clone(),
                    arch: "x86_64".to_string(),
                }),
            protected: false,
            private_ip: None,
            public_ip: public_ips.first().cloned(),
            public_ips,
            routed_ip_enabled: true,
            enable_ipv6: false,
            dynamic_ip_required: server.dynamic_ip_required,
            creation_date: fmt_date(server.created),
            modification_date: fmt_date(server.modified),
            security_group: SecurityGroupView {
                id: server.security_group.clone(),
                name: "Default security group".to_string(),
            },
            state: server.state.as_str().to_string(),
            state_detail: server.state_detail.clone(),
            allowed_actions: server
                .state
                .allowed_actions()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            tags: server.tags.clone(),
            volumes,
            placement_group: None,
            private_nics: Vec::new(),
            zone: server.zone.clone(),
        }
    }

    pub fn volume_view(&self, volume: &SimVolume) -> VolumeView {
        VolumeView {
            id: volume.id.clone(),
            name: volume.name.clone(),
            volume_type: if volume.perf_iops >= 15_000 {
                "sbs_15k".to_string()
            } else {
                "sbs_5k".to_string()
            },
            size: volume.size,
            project_id: volume.project_id.clone(),
            created_at: fmt_date(volume.created),
            updated_at: fmt_date(volume.updated),
            references: volume
                .attachment
                .iter()
                .map(|a| ReferenceView {
                    id: a.reference_id.clone(),
                    product_resource_type: "instance_server".to_string(),
                    product_resource_id: a.server_id.clone(),
                    created_at: fmt_date(a.since),
                    reference_type: "exclusive".to_string(),
                    status: "attached".to_string(),
                })
                .collect(),
            parent_snapshot_id: None,
            status: volume.status.as_str().to_string(),
            tags: volume.tags.clone(),
            specs: SpecsView {
                perf_iops: volume.perf_iops,
                class: "sbs".to_string(),
            },
            zone: volume.zone.clone(),
            last_detached_at: volume.last_detached_at.map(fmt_date),
        }
    }

    pub fn ip_view(&self, ip: &SimIp) -> IpView {
        IpView {
            id: ip.id.clone(),
            address: ip.address.to_string(),
            prefix: format!("{}/32", ip.address),
            reverse: None,
            server: ip
                .server
                .as_ref()
                .filter(|_| ip.attached)
                .map(|id| ServerRefView {
                    id: id.clone(),
                    name: self
                        .servers
                        .get(id)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                }),
            organization: ip.organization.clone(),
            project: ip.project.clone(),
            zone: ip.zone.clone(),
            ip_type: "routed_ipv4".to_string(),
            state: if ip.attached {
                "attached".to_string()
            } else if ip.server.is_some() {
                "pending".to_string()
            } else {
                "detached".to_string()
            },
            tags: ip.tags.clone(),
            dynamic: ip.dynamic,
        }
    }
}

/// Detaches a block volume (it becomes `available`).
pub(crate) fn detach_block(volume: &mut SimVolume, now: DateTime<Utc>) {
    if volume.attachment.take().is_some() {
        volume.last_detached_at = Some(now);
    }
    if volume.status == VolStatus::InUse {
        volume.status = VolStatus::Available;
    }
    volume.updated = now;
}
