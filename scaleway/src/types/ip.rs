//! Flexible IPs (`/instance/v1/zones/{zone}/ips`).

use serde::{Deserialize, Serialize};

/// A flexible IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlexibleIp {
    /// IP id.
    pub id: String,
    /// The address.
    pub address: String,
    /// `routed_ipv4`, `routed_ipv6`, `nat`.
    #[serde(rename = "type", default)]
    pub ip_type: String,
    /// `attached`, `detached`, `pending`, ...
    #[serde(default)]
    pub state: String,
    /// The server it is attached to.
    #[serde(default)]
    pub server: Option<IpServerRef>,
    /// Project id.
    #[serde(default)]
    pub project: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Zone.
    #[serde(default)]
    pub zone: String,
}

/// The server a flexible IP is attached to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpServerRef {
    /// Server id.
    pub id: String,
    /// Server name.
    #[serde(default)]
    pub name: String,
}

/// Body of `POST /ips`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateIpRequest {
    /// Project id; `None` means the client's configured project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `routed_ipv4` (default) or `routed_ipv6`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ip_type: Option<String>,
}
