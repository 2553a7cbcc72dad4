//! Instance servers: the server object, its state, actions and the requests that shape it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::string_enum;

/// A Scaleway Instance server (`{"server": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Server id (UUID).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Project id owning the server.
    #[serde(default)]
    pub project: String,
    /// Organization id (legacy ownership field).
    #[serde(default)]
    pub organization: Option<String>,
    /// Commercial type, e.g. `L4-1-24G`.
    #[serde(default)]
    pub commercial_type: String,
    /// Lifecycle state.
    pub state: ServerState,
    /// Finer state (`allocating node`, `provisioning node`, `booting kernel`, `booted`, ...).
    #[serde(default)]
    pub state_detail: String,
    /// Actions accepted in the current state (`poweron`, `poweroff`, `terminate`, `backup`, ...).
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    /// Tags (the control plane tags each server with the instance id it belongs to).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Image the server was created from.
    #[serde(default)]
    pub image: Option<ServerImage>,
    /// Attached volumes by index (`"0"` is the root volume).
    #[serde(default)]
    pub volumes: BTreeMap<String, ServerVolume>,
    /// Public IPs attached to the server (dynamic or flexible).
    #[serde(default)]
    pub public_ips: Vec<PublicIp>,
    /// Deprecated single public IP (kept for compatibility; prefer [`Server::public_address`]).
    #[serde(default)]
    pub public_ip: Option<PublicIp>,
    /// Private IP, when the server has one.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// Whether a dynamic IP is assigned at boot.
    #[serde(default)]
    pub dynamic_ip_required: bool,
    /// Boot type (`local`, `rescue`, ...).
    #[serde(default)]
    pub boot_type: Option<String>,
    /// Zone of the server.
    #[serde(default)]
    pub zone: String,
    /// Creation time.
    #[serde(default)]
    pub creation_date: Option<DateTime<Utc>>,
    /// Last modification time.
    #[serde(default)]
    pub modification_date: Option<DateTime<Utc>>,
}

impl Server {
    /// The first attached IPv4 public address (from `public_ips`, else the deprecated
    /// `public_ip`). `None` until the server has one (a dynamic IP appears once running).
    pub fn public_address(&self) -> Option<&str> {
        self.public_ips
            .iter()
            .find(|ip| ip.family == "inet" && ip.state.as_deref().is_none_or(|s| s == "attached"))
            .or(self.public_ips.first())
            .or(self.public_ip.as_ref())
            .map(|ip| ip.address.as_str())
            .filter(|a| !a.is_empty())
    }

    /// True when `action` is listed in `allowed_actions`.
    pub fn allows(&self, action: ServerAction) -> bool {
        self.allowed_actions.iter().any(|a| a == action.as_str())
    }

    /// True when the server carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Server lifecycle state. Unknown states are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Stopped, no hypervisor slot held.
    Stopped,
    /// Stopped while keeping its hypervisor slot (`stop_in_place`).
    StoppedInPlace,
    /// Booting (see `state_detail`).
    Starting,
    /// Running.
    Running,
    /// Shutting down.
    Stopping,
    /// Locked by Scaleway (abuse, billing): no action possible.
    Locked,
    /// A state this client does not know.
    Unknown(String),
}

string_enum!(ServerState {
    Stopped => "stopped",
    StoppedInPlace => "stopped in place",
    Starting => "starting",
    Running => "running",
    Stopping => "stopping",
    Locked => "locked",
});

impl ServerState {
    /// The states a client waits for: `stopped`, `stopped in place`, `locked`, `running`.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Stopped | Self::StoppedInPlace | Self::Locked | Self::Running
        )
    }
}

/// An action of `POST /servers/{id}/action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerAction {
    /// Allocate a node and boot.
    Poweron,
    /// Shut down and release the node (and a dynamic IP).
    Poweroff,
    /// Shut down but keep the node.
    StopInPlace,
    /// Reboot.
    Reboot,
    /// Power off and delete the server with its local volumes; block volumes are only detached.
    Terminate,
}

impl ServerAction {
    /// The wire text (`poweron`, `poweroff`, `stop_in_place`, `reboot`, `terminate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poweron => "poweron",
            Self::Poweroff => "poweroff",
            Self::StopInPlace => "stop_in_place",
            Self::Reboot => "reboot",
            Self::Terminate => "terminate",
        }
    }

    /// Parses the wire text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "poweron" => Self::Poweron,
            "poweroff" => Self::Poweroff,
            "stop_in_place" => Self::StopInPlace,
            "reboot" => Self::Reboot,
            "terminate" => Self::Terminate,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ServerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Image summary inside a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerImage {
    /// Image id.
    pub id: String,
    /// Image name or label.
    #[serde(default)]
    pub name: String,
}

/// A volume as listed inside a server's `volumes` map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerVolume {
    /// Volume id (for `sbs_volume`, the Block Storage volume id).
    pub id: String,
    /// Volume name, when the API gives one.
    #[serde(default)]
    pub name: Option<String>,
    /// `l_ssd`, `sbs_volume`, `scratch`, ...
    #[serde(default)]
    pub volume_type: String,
    /// Size in bytes (not always given for `sbs_volume`).
    #[serde(default)]
    pub size: Option<u64>,
    /// Volume state as the Instance API sees it.
    #[serde(default)]
    pub state: Option<String>,
    /// Whether this is the boot volume.
    #[serde(default)]
    pub boot: bool,
    /// Zone of the volume.
    #[serde(default)]
    pub zone: Option<String>,
}

/// A public IP attached to a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicIp {
    /// IP id.
    #[serde(default)]
    pub id: String,
    /// The address (`51.15.x.y`; in the simulator a loopback address).
    pub address: String,
    /// `inet` or `inet6`.
    #[serde(default = "default_family")]
    pub family: String,
    /// True for a dynamic IP (released with the server's node), false for a flexible IP.
    #[serde(default)]
    pub dynamic: bool,
    /// `attached`, `pending`, `detached`, ...
    #[serde(default)]
    pub state: Option<String>,
}

fn default_family() -> String {
    "inet".to_string()
}

/// The task returned by a server action (`202 {"task": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// `server_poweron`, `server_terminate`, ...
    #[serde(default)]
    pub description: String,
    /// `pending`, `started`, `success`, `failure`, `retry`.
    #[serde(default)]
    pub status: String,
    /// Resource the task acts on.
    #[serde(default)]
    pub href_from: Option<String>,
    /// Resource the task produces.
    #[serde(default)]
    pub href_result: Option<String>,
    /// Start time.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// End time.
    #[serde(default)]
    pub terminated_at: Option<DateTime<Utc>>,
    /// Progress percentage.
    #[serde(default)]
    pub progress: Option<u32>,
    /// Zone.
    #[serde(default)]
    pub zone: Option<String>,
}

/// A server reference (`{"id", "name"}`) inside other objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRef {
    /// Server id.
    pub id: String,
    /// Server name.
    #[serde(default)]
    pub name: String,
}

/// One entry of the `volumes` map of a server creation.
///
/// Either an existing volume (`id`), or a new one (`size` + `volume_type`, optionally
/// `base_snapshot`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeTemplate {
    /// Attach this existing volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name of a new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Size in bytes of a new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `l_ssd` or `sbs_volume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Whether to boot from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<bool>,
    /// Snapshot to create the volume from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_snapshot: Option<String>,
}

impl VolumeTemplate {
    /// A new Block Storage (`sbs_volume`) volume of `size_bytes`.
    pub fn sbs(size_bytes: u64) -> Self {
        Self {
            size: Some(size_bytes),
            volume_type: Some("sbs_volume".to_string()),
            ..Self::default()
        }
    }

    /// A new local SSD (`l_ssd`) volume of `size_bytes` (not offered by L4/L40S/H100 types).
    pub fn local(size_bytes: u64) -> Self {
        Self {
            size: Some(size_bytes),
            volume_type: Some("l_ssd".to_string()),
            ..Self::default()
        }
    }

    /// Attach an existing volume.
    pub fn existing(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }
}

/// Body of `POST /servers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateServerRequest {
    /// Server name.
    pub name: String,
    /// Commercial type, e.g. `L4-1-24G`.
    pub commercial_type: String,
    /// Image id or label (e.g. `ubuntu_jammy_gpu_os_12`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Volumes by index (`"0"` is the root volume).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, VolumeTemplate>,
    /// Assign a dynamic public IP at boot (Scaleway's default: true).
    pub dynamic_ip_required: bool,
    /// Flexible IP ids to attach at creation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public_ips: Vec<String>,
    /// Boot type (Scaleway's default: `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_type: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Project id; `None` means the client's configured project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Security group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    /// Placement group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_group: Option<String>,
}

impl CreateServerRequest {
    /// A request with Scaleway's defaults (dynamic IP, no explicit volumes, boot type unset).
    pub fn new(
        name: impl Into<String>,
        commercial_type: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            commercial_type: commercial_type.into(),
            image: Some(image.into()),
            volumes: BTreeMap::new(),
            dynamic_ip_required: true,
            public_ips: Vec::new(),
            boot_type: None,
            tags: Vec::new(),
            project: None,
            security_group: None,
            placement_group: None,
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the volume at `index`.
    pub fn volume(mut self, index: u32, template: VolumeTemplate) -> Self {
        self.volumes.insert(index.to_string(), template);
        self
    }
}

/// Body of `PATCH /servers/{id}` (only the fields set are changed).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateServerRequest {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New tag list (replaces the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Change whether a dynamic IP is assigned at boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_ip_required: Option<bool>,
}

/// Filters of `GET /servers`. Every filter set must match; `tags` must ALL be present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListServersFilter {
    /// Servers carrying all of these tags.
    pub tags: Vec<String>,
    /// Name contains this text.
    pub name: Option<String>,
    /// In this state.
    pub state: Option<ServerState>,
    /// Of this commercial type.
    pub commercial_type: Option<String>,
    /// In this project.
    pub project: Option<String>,
    /// Page size (1..=100; default 100 to minimise round trips).
    pub per_page: Option<u32>,
}

impl ListServersFilter {
    /// Servers carrying `tag`.
    pub fn tagged(tag: impl Into<String>) -> Self {
        Self {
            tags: vec![tag.into()],
            ..Self::default()
        }
    }
}
