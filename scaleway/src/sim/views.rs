//! JSON shapes the simulator answers with, written independently from the client's types so
//! that the client's parsing is really tested against the API's shapes (field names follow the
//! reference and recorded Scaleway traffic, not the client's structs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::Faults;

/// A server, as `GET /servers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub id: String,
    pub name: String,
    pub arch: String,
    pub commercial_type: String,
    pub boot_type: String,
    pub organization: String,
    pub project: String,
    pub hostname: String,
    pub image: Option<ImageView>,
    pub protected: bool,
    pub private_ip: Option<String>,
    pub public_ip: Option<PublicIpView>,
    pub public_ips: Vec<PublicIpView>,
    pub routed_ip_enabled: bool,
    pub enable_ipv6: bool,
    pub dynamic_ip_required: bool,
    pub creation_date: String,
    pub modification_date: String,
    pub security_group: SecurityGroupView,
    pub state: String,
    pub state_detail: String,
    pub allowed_actions: Vec<String>,
    pub tags: Vec<String>,
    pub volumes: BTreeMap<String, ServerVolumeView>,
    pub placement_group: Option<String>,
    pub private_nics: Vec<String>,
    pub zone: String,
}

/// Image summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    pub id: String,
    pub name: String,
    pub arch: String,
}

/// Security group summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupView {
    pub id: String,
    pub name: String,
}

/// A public IP inside a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicIpView {
    pub id: String,
    pub address: String,
    pub gateway: Option<String>,
    pub netmask: String,
    pub family: String,
    pub dynamic: bool,
    pub provisioning_mode: String,
    pub tags: Vec<String>,
    pub state: String,
}

/// A volume inside a server's `volumes` map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerVolumeView {
    pub id: String,
    pub name: Option<String>,
    pub volume_type: String,
    pub size: Option<u64>,
    pub state: String,
    pub boot: bool,
    pub zone: String,
}

/// A Block Storage volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub volume_type: String,
    pub size: u64,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub references: Vec<ReferenceView>,
    pub parent_snapshot_id: Option<String>,
    pub status: String,
    pub tags: Vec<String>,
    pub specs: SpecsView,
    pub zone: String,
    pub last_detached_at: Option<String>,
}

/// A reference to a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceView {
    pub id: String,
    pub product_resource_type: String,
    pub product_resource_id: String,
    pub created_at: String,
    #[serde(rename = "type")]
    pub reference_type: String,
    pub status: String,
}

/// Volume performance specs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecsView {
    pub perf_iops: u32,
    pub class: String,
}

/// A flexible (or dynamic) IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpView {
    pub id: String,
    pub address: String,
    pub prefix: String,
    pub reverse: Option<String>,
    pub server: Option<ServerRefView>,
    pub organization: String,
    pub project: String,
    pub zone: String,
    #[serde(rename = "type")]
    pub ip_type: String,
    pub state: String,
    pub tags: Vec<String>,
    /// Simulator-only: true for a dynamic IP (not part of the real IP object).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub dynamic: bool,
}

/// Server reference inside an IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRefView {
    pub id: String,
    pub name: String,
}

/// The task of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: String,
    pub description: String,
    pub status: String,
    pub href_from: String,
    pub href_result: String,
    pub started_at: String,
    pub terminated_at: Option<String>,
    pub progress: u32,
    pub zone: String,
}

/// Everything the simulator holds, for `GET /_sim/state` and [`super::SimHandle::state`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSnapshot {
    /// Every server, all zones, oldest first.
    pub servers: Vec<ServerView>,
    /// Every block volume, oldest first.
    pub volumes: Vec<VolumeView>,
    /// Every IP (flexible and dynamic), oldest first.
    pub ips: Vec<IpView>,
    /// Requests received per operation (after authentication, including faulted ones).
    pub calls: BTreeMap<String, u64>,
    /// Server actions received, per action (`poweron`, ...), including refused ones.
    pub actions: BTreeMap<String, u64>,
    /// Current faults (with remaining counts).
    pub faults: Faults,
    /// The address pool of VM public addresses.
    pub ip_pool: String,
}

impl SimSnapshot {
    /// Requests received for `operation` (see [`crate::operations`]).
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// The server with this id.
    pub fn server(&self, id: &str) -> Option<&ServerView> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// The volume with this id.
    pub fn volume(&self, id: &str) -> Option<&VolumeView> {
        self.volumes.iter().find(|v| v.id == id)
    }
}
