use serde::{Deserialize, Serialize};

use super::InstanceStatus;

/// Why an instance failed: the predecessor's codes (kept so operators recognise them) and the
/// ones this platform adds. Serialized in SCREAMING_SNAKE_CASE, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    MissingModel,
    InvalidZone,
    InvalidInstanceType,
    IncompatibleModelInstance,
    ProviderCreateFailed,
    ProviderStartFailed,
    ProviderStartTimeout,
    ProviderOutOfStock,
    InstanceTypeNotAvailableInZone,
    SshNotAccessible,
    StartupTimeout,
    HealthCheckFailed,
    RecoveryTimeout,
    MissingProviderCredentials,
    /// The provider refused for lack of quota.
    ProviderQuotaExceeded,
    /// The server vanished at the provider while the instance was alive.
    ProviderServerDeleted,
    /// An install phase failed over SSH.
    InstallFailed,
    /// The server presented another SSH host key than the one pinned at first contact.
    SshHostKeyChanged,
    /// Any other provider error.
    ProviderError,
}

impl FailureCode {
    /// Every code.
    pub const ALL: [Self; 19] = [
        Self::MissingModel,
        Self::InvalidZone,
        Self::InvalidInstanceType,
        Self::IncompatibleModelInstance,
        Self::ProviderCreateFailed,
        Self::ProviderStartFailed,
        Self::ProviderStartTimeout,
        Self::ProviderOutOfStock,
        Self::InstanceTypeNotAvailableInZone,
        Self::SshNotAccessible,
        Self::StartupTimeout,
        Self::HealthCheckFailed,
        Self::RecoveryTimeout,
        Self::MissingProviderCredentials,
        Self::ProviderQuotaExceeded,
        Self::ProviderServerDeleted,
        Self::InstallFailed,
        Self::SshHostKeyChanged,
        Self::ProviderError,
    ];

    /// The code as serialized and shown (`PROVIDER_OUT_OF_STOCK`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingModel => "MISSING_MODEL",
            Self::InvalidZone => "INVALID_ZONE",
            Self::InvalidInstanceType => "INVALID_INSTANCE_TYPE",
            Self::IncompatibleModelInstance => "INCOMPATIBLE_MODEL_INSTANCE",
            Self::ProviderCreateFailed => "PROVIDER_CREATE_FAILED",
            Self::ProviderStartFailed => "PROVIDER_START_FAILED",
            Self::ProviderStartTimeout => "PROVIDER_START_TIMEOUT",
            Self::ProviderOutOfStock => "PROVIDER_OUT_OF_STOCK",
            Self::InstanceTypeNotAvailableInZone => "INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE",
            Self::SshNotAccessible => "SSH_NOT_ACCESSIBLE",
            Self::StartupTimeout => "STARTUP_TIMEOUT",
            Self::HealthCheckFailed => "HEALTH_CHECK_FAILED",
            Self::RecoveryTimeout => "RECOVERY_TIMEOUT",
            Self::MissingProviderCredentials => "MISSING_PROVIDER_CREDENTIALS",
            Self::ProviderQuotaExceeded => "PROVIDER_QUOTA_EXCEEDED",
            Self::ProviderServerDeleted => "PROVIDER_SERVER_DELETED",
            Self::InstallFailed => "INSTALL_FAILED",
            Self::SshHostKeyChanged => "SSH_HOST_KEY_CHANGED",
            Self::ProviderError => "PROVIDER_ERROR",
        }
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why and where an instance failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: FailureCode,
    pub message: String,
    /// The status the instance was in when it failed.
    pub at_status: InstanceStatus,
}

#[cfg(test)]
mod tests {
    use super::FailureCode;

    #[test]
    fn codes_serialize_as_shown() {
        for code in FailureCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<FailureCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn the_predecessor_codes_are_all_kept() {
        let predecessor = [
            "MISSING_MODEL",
            "INVALID_ZONE",
            "INVALID_INSTANCE_TYPE",
            "INCOMPATIBLE_MODEL_INSTANCE",
            "PROVIDER_CREATE_FAILED",
            "PROVIDER_START_FAILED",
            "PROVIDER_START_TIMEOUT",
            "PROVIDER_OUT_OF_STOCK",
            "INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE",
            "SSH_NOT_ACCESSIBLE",
            "STARTUP_TIMEOUT",
            "HEALTH_CHECK_FAILED",
            "RECOVERY_TIMEOUT",
            "MISSING_PROVIDER_CREDENTIALS",
        ];
        for name in predecessor {
            assert!(
                serde_json::from_str::<FailureCode>(&format!("\"{name}\"")).is_ok(),
                "{name}"
            );
        }
    }
}
