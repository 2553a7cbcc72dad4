use serde::{Deserialize, Serialize};

/// Where an instance is in its life. See the diagram in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Accepted by the API; nothing exists at the provider yet.
    Requested,
    /// The provisioning processor is creating the volume and the server and powering it on.
    Provisioning,
    /// The server runs and has a public IP; waiting for SSH.
    Booting,
    /// The bootstrap processor runs the install phases over SSH.
    Installing,
    /// Installed; vLLM is starting and the readiness checks run.
    Starting,
    /// Serving: routable by the gateway.
    Ready,
    /// Was ready (or on its way), but is not serving now: failing health check, stopped server.
    Unavailable,
    /// Serving the requests in flight, accepting no new ones, before termination.
    Draining,
    /// Termination requested: the terminator deletes the server and the volumes.
    Terminating,
    /// Nothing is left at the provider. Terminal.
    Terminated,
    /// Failed; may still hold resources until cleaned up and archived.
    Failed,
    /// Hidden from the default lists; history kept. Terminal.
    Archived,
}

impl InstanceStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [Self; 12] = [
        Self::Requested,
        Self::Provisioning,
        Self::Booting,
        Self::Installing,
        Self::Starting,
        Self::Ready,
        Self::Unavailable,
        Self::Draining,
        Self::Terminating,
        Self::Terminated,
        Self::Failed,
        Self::Archived,
    ];

    /// The stored and shown name (`requested`, `provisioning`, ...), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Provisioning => "provisioning",
            Self::Booting => "booting",
            Self::Installing => "installing",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Unavailable => "unavailable",
            Self::Draining => "draining",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
            Self::Failed => "failed",
            Self::Archived => "archived",
        }
    }

    /// No command changes a terminal instance any more (`terminated`, `archived`).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Terminated | Self::Archived)
    }

    /// On its way to serving, or serving: `requested` to `draining`. Not active: failed,
    /// terminating, terminated, archived. An active instance may still fail.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Requested
                | Self::Provisioning
                | Self::Booting
                | Self::Installing
                | Self::Starting
                | Self::Ready
                | Self::Unavailable
                | Self::Draining
        )
    }

    /// Whether the instance had reached SSH (installing or later, before termination): a
    /// failure from such a status leaves a reachable server that a reinstall can reuse.
    pub fn is_after_ssh(self) -> bool {
        matches!(
            self,
            Self::Installing | Self::Starting | Self::Ready | Self::Unavailable | Self::Draining
        )
    }
}

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for InstanceStatus {
    type Err = UnknownStatus;

    /// Parses the serialized name, as in a `?status=` filter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.chars().take(64).collect()))
    }
}

/// A string that names no [`InstanceStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown instance status {0:?}")]
pub struct UnknownStatus(pub String);

#[cfg(test)]
mod tests {
    use super::InstanceStatus;

    #[test]
    fn names_match_serde_and_parse_back() {
        for s in InstanceStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.as_str().parse::<InstanceStatus>(), Ok(s));
        }
        assert!("startup_failed".parse::<InstanceStatus>().is_err());
    }

    #[test]
    fn terminal_and_active_statuses_do_not_overlap() {
        for s in InstanceStatus::ALL {
            assert!(!(s.is_terminal() && s.is_active()), "{s}");
        }
        let terminal: Vec<_> = InstanceStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [InstanceStatus::Terminated, InstanceStatus::Archived]
        );
    }
}
