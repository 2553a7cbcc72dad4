//! Block Storage volumes (`/block/v1alpha1/zones/{zone}/volumes`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::string_enum;

/// A Block Storage volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Volume type (`sbs_5k`, `sbs_15k`).
    #[serde(rename = "type", default)]
    pub volume_type: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Project id.
    #[serde(default)]
    pub project_id: String,
    /// Lifecycle status.
    pub status: VolumeStatus,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Resources using the volume (an attached server appears here).
    #[serde(default)]
    pub references: Vec<VolumeReference>,
    /// Performance class.
    #[serde(default)]
    pub specs: Option<VolumeSpecs>,
    /// Zone.
    #[serde(default)]
    pub zone: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was last detached from a server.
    #[serde(default)]
    pub last_detached_at: Option<DateTime<Utc>>,
}

impl Volume {
    /// The id of the Instance server this volume is attached to, if any.
    pub fn attached_server_id(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.product_resource_type == "instance_server")
            .map(|r| r.product_resource_id.as_str())
    }
}

/// A reference from a product resource to a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeReference {
    /// Reference id.
    #[serde(default)]
    pub id: String,
    /// `instance_server`, ...
    #[serde(default)]
    pub product_resource_type: String,
    /// The server id, for `instance_server`.
    #[serde(default)]
    pub product_resource_id: String,
    /// `exclusive`, `read_only`, ...
    #[serde(rename = "type", default)]
    pub reference_type: String,
    /// `attached`, `attaching`, `detaching`, ...
    #[serde(default)]
    pub status: String,
    /// Creation time of the reference.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// Performance specification of a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpecs {
    /// Provisioned IOPS (5000 or 15000).
    #[serde(default)]
    pub perf_iops: Option<u32>,
    /// `sbs`.
    #[serde(default)]
    pub class: Option<String>,
}

/// Block volume status. Unknown statuses are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VolumeStatus {
    /// Being created.
    Creating,
    /// Ready, not attached.
    Available,
    /// Attached to a server.
    InUse,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// Being resized.
    Resizing,
    /// In error.
    Error,
    /// Locked.
    Locked,
    /// A status this client does not know.
    Unknown(String),
}

string_enum!(VolumeStatus {
    Creating => "creating",
    Available => "available",
    InUse => "in_use",
    Deleting => "deleting",
    Deleted => "deleted",
    Resizing => "resizing",
    Error => "error",
    Locked => "locked",
});

/// Body of `POST /block/v1alpha1/zones/{zone}/volumes` (an empty volume of `size` bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateVolumeRequest {
    /// Name.
    pub name: String,
    /// Project id; `None` means the client's configured project.
    pub project_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Provisioned IOPS (5000 or 15000); `None` keeps Scaleway's default (5000).
    pub perf_iops: Option<u32>,
    /// Tags.
    pub tags: Vec<String>,
}

impl CreateVolumeRequest {
    /// An empty volume of `size_bytes`.
    pub fn new(name: impl Into<String>, size_bytes: u64) -> Self {
        Self {
            name: name.into(),
            project_id: None,
            size: size_bytes,
            perf_iops: None,
            tags: Vec::new(),
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}

/// Filters of `GET /block/v1alpha1/zones/{zone}/volumes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListVolumesFilter {
    /// Volumes carrying all of these tags.
    pub tags: Vec<String>,
    /// In this project.
    pub project_id: Option<String>,
    /// Name contains this text.
    pub name: Option<String>,
    /// Page size (1..=100; default 100).
    pub page_size: Option<u32>,
}

impl ListVolumesFilter {
    /// Volumes carrying `tag`.
    pub fn tagged(tag: impl Into<String>) -> Self {
        Self {
            tags: vec![tag.into()],
            ..Self::default()
        }
    }
}
