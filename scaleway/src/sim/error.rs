//! [`SimError`]: an error answer of the simulator, in Scaleway's JSON shape.
//!
//! Status codes and bodies, as chosen to match the real API (where the real status is not
//! documented, the choice is stated):
//!
//! | case | status | body `type` |
//! |---|---|---|
//! | malformed or invalid request, unknown zone | 400 | `invalid_arguments` with `details[{argument_name, reason, help_message}]` |
//! | missing or wrong `X-Auth-Token` | 401 | `denied_authentication` |
//! | project not the simulator's | 403 | `permissions_denied` |
//! | GPU server quota reached | 403 | `quotas_exceeded` with `details[{resource, quota, current}]` |
//! | unknown resource | 404 | `not_found` with `resource`, `resource_id` |
//! | action or DELETE not allowed in a settled state | 400 | legacy `invalid_request_error`, message `server should be stopped` / `server should be running` (the Instance API's own wording) |
//! | resource in a transitional state (starting, stopping, creating) | 409 | `transient_state` with `resource`, `resource_id`, `current_state` |
//! | deleting an attached block volume | 412 | `precondition_failed`, `precondition: resource_still_in_use` |
//! | commercial type out of stock in the zone (create, poweron) | 412 | `out_of_stock` with `resource` (status chosen: Scaleway does not document it; clients dispatch on `type`) |
//! | injected burst | configured (429/5xx) | `rate_limited` / `internal_error` / `service_unavailable`, with `Retry-After` when configured |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer of the simulator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// 400 `invalid_arguments`.
    #[error("invalid arguments: {0:?}")]
    InvalidArguments(Vec<ArgumentError>),
    /// 401 `denied_authentication`.
    #[error("authentication denied: {0}")]
    DeniedAuthentication(&'static str),
    /// 403 `permissions_denied`.
    #[error("permission denied on {resource}")]
    PermissionsDenied {
        /// Resource kind.
        resource: &'static str,
        /// Action attempted.
        action: &'static str,
    },
    /// 403 `quotas_exceeded`.
    #[error("quota {resource} exceeded ({current}/{quota})")]
    QuotasExceeded {
        /// Quota name.
        resource: String,
        /// Limit.
        quota: u64,
        /// Usage.
        current: u64,
    },
    /// 404 `not_found`.
    #[error("{resource} {resource_id} not found")]
    NotFound {
        /// Resource kind (`instance_server`, `volume`, `ip`).
        resource: &'static str,
        /// The id asked for.
        resource_id: String,
    },
    /// 400 legacy `invalid_request_error` with a message only.
    #[error("{0}")]
    InvalidRequest(String),
    /// 409 `transient_state`.
    #[error("{resource} {resource_id} is {current_state}")]
    TransientState {
        /// Resource kind.
        resource: &'static str,
        /// Resource id.
        resource_id: String,
        /// Current state.
        current_state: String,
    },
    /// 412 `precondition_failed`.
    #[error("precondition {precondition} failed: {help_message}")]
    PreconditionFailed {
        /// Machine-readable precondition.
        precondition: &'static str,
        /// Explanation.
        help_message: String,
    },
    /// 412 `out_of_stock`.
    #[error("{resource} is out of stock")]
    OutOfStock {
        /// The commercial type.
        resource: String,
    },
    /// An injected failure (burst fault).
    #[error("injected {status}")]
    Injected {
        /// HTTP status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after_secs: Option<u64>,
    },
}

/// One entry of an `invalid_arguments` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    /// Argument name.
    pub argument_name: String,
    /// `required`, `format`, `constraint`.
    pub reason: &'static str,
    /// Explanation.
    pub help_message: String,
}

impl SimError {
    /// A single invalid argument.
    pub fn argument(
        name: impl Into<String>,
        reason: &'static str,
        help: impl Into<String>,
    ) -> Self {
        Self::InvalidArguments(vec![ArgumentError {
            argument_name: name.into(),
            reason,
            help_message: help.into(),
        }])
    }

    /// `not_found` for a server.
    pub fn server_not_found(id: &str) -> Self {
        Self::NotFound {
            resource: "instance_server",
            resource_id: id.to_string(),
        }
    }

    /// HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidArguments(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::DeniedAuthentication(_) => StatusCode::UNAUTHORIZED,
            Self::PermissionsDenied { .. } | Self::QuotasExceeded { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::TransientState { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } | Self::OutOfStock { .. } => {
                StatusCode::PRECONDITION_FAILED
            }
            Self::Injected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Value {
        match self {
            Self::InvalidArguments(details) => json!({
                "type": "invalid_arguments",
                "message": "invalid argument(s)",
                "details": details.iter().map(|d| json!({
                    "argument_name": d.argument_name,
                    "reason": d.reason,
                    "help_message": d.help_message,
                })).collect::<Vec<_>>(),
            }),
            Self::DeniedAuthentication(reason) => json!({
                "type": "denied_authentication",
                "message": "authentication is denied",
                "method": "api_key",
                "reason": reason,
            }),
            Self::PermissionsDenied { resource, action } => json!({
                "type": "permissions_denied",
                "message": "insufficient permissions",
                "details": [{"resource": resource, "action": action}],
            }),
            Self::QuotasExceeded {
                resource,
                quota,
                current,
            } => json!({
                "type": "quotas_exceeded",
                "message": "quota(s) exceeded for this resource",
                "details": [{"resource": resource, "quota": quota, "current": current}],
            }),
            Self::NotFound {
                resource,
                resource_id,
            } => json!({
                "type": "not_found",
                "message": "resource is not found",
                "resource": resource,
                "resource_id": resource_id,
            }),
            Self::InvalidRequest(message) => json!({
                "type": "invalid_request_error",
                "message": message,
            }),
            Self::TransientState {
                resource,
                resource_id,
                current_state,
            } => json!({
                "type": "transient_state",
                "message": "resource is in a transient state",
                "resource": resource,
                "resource_id": resource_id,
                "current_state": current_state,
            }),
            Self::PreconditionFailed {
                precondition,
                help_message,
            } => json!({
                "type": "precondition_failed",
                "message": "precondition is not respected",
                "precondition": precondition,
                "help_message": help_message,
            }),
            Self::OutOfStock { resource } => json!({
                "type": "out_of_stock",
                "message": format!("{resource} is out of stock in this zone"),
                "resource": resource,
            }),
            Self::Injected { status, .. } => {
                let kind = match status {
                    429 => "rate_limited",
                    503 => "service_unavailable",
                    _ => "internal_error",
                };
                json!({"type": kind, "message": format!("injected fault: HTTP {status}")})
            }
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Self::Injected {
            retry_after_secs: Some(secs),
            ..
        } = self
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
