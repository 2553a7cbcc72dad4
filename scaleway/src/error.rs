//! [`ScalewayError`]: every failure of a Scaleway call, typed.
//!
//! Scaleway answers errors as `{"type": "...", "message": "...", ...details}`. The modern types
//! (`invalid_arguments`, `quotas_exceeded`, `not_found`, `transient_state`, `out_of_stock`,
//! `permissions_denied`, `denied_authentication`, `precondition_failed`, `locked`) map one to one.
//! The legacy Instance API types map as follows:
//!
//! - `unknown_resource` (`"Volume '…' not found"`) -> [`ScalewayError::NotFound`], with the id
//!   and resource kind recovered from the message;
//! - `invalid_request_error` with `fields` -> [`ScalewayError::InvalidArguments`] (one detail per
//!   field message);
//! - `invalid_request_error` on 403 naming a `resource` (`"Quota exceeded for this resource."`)
//!   -> [`ScalewayError::QuotasExceeded`];
//! - `invalid_request_error` with only a message (`"server should be stopped"`) ->
//!   [`ScalewayError::PreconditionFailed`]: the Instance API reports state conflicts this way.
//!
//! Anything untyped falls back on the HTTP status (401 -> denied authentication, 403 ->
//! permissions denied, 404 -> not found, 429 -> rate limited, 5xx -> server error), and then to
//! [`ScalewayError::Other`]. No variant ever carries the secret key: transport errors are
//! rendered from `reqwest` errors, which do not include request headers.

use serde::Deserialize;
use serde_json::Value;

/// One invalid argument of an `invalid_arguments` error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InvalidArgument {
    /// The argument (`commercial_type`, `volumes.0.size`, ...).
    #[serde(default)]
    pub argument_name: String,
    /// `required`, `format`, `constraint`, `unknown`.
    #[serde(default)]
    pub reason: String,
    /// Human explanation.
    #[serde(default)]
    pub help_message: String,
}

/// One exceeded quota of a `quotas_exceeded` error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QuotaDetail {
    /// Quota name.
    #[serde(default)]
    pub resource: String,
    /// The limit.
    #[serde(default)]
    pub quota: u64,
    /// Current usage.
    #[serde(default)]
    pub current: u64,
}

/// A failed Scaleway call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalewayError {
    /// No capacity for this commercial type in this zone (creation or power-on).
    #[error("out of stock: {resource}: {message}")]
    OutOfStock {
        /// What is out of stock (the commercial type, as far as Scaleway says).
        resource: String,
        /// Scaleway's message.
        message: String,
    },
    /// A quota of the project or organisation is reached.
    #[error("quotas exceeded: {}", fmt_quotas(details))]
    QuotasExceeded {
        /// Which quotas.
        details: Vec<QuotaDetail>,
    },
    /// The resource does not exist (or no longer exists).
    #[error("{resource} {resource_id} not found")]
    NotFound {
        /// Resource kind (`instance_server`, `volume`, ...), empty when unknown.
        resource: String,
        /// Resource id, empty when unknown.
        resource_id: String,
    },
    /// The request was rejected as malformed.
    #[error("invalid arguments: {message}{}", fmt_arguments(details))]
    InvalidArguments {
        /// Per-argument details.
        details: Vec<InvalidArgument>,
        /// Scaleway's message.
        message: String,
    },
    /// The secret key was refused (401).
    #[error("authentication denied: {message}")]
    DeniedAuthentication {
        /// Scaleway's message.
        message: String,
    },
    /// The key lacks a permission (403).
    #[error("permission denied: {message}")]
    PermissionsDenied {
        /// Scaleway's message.
        message: String,
    },
    /// The resource is in a transitional state; retry once it settles.
    #[error("{resource} {resource_id} is in a transient state ({current_state})")]
    TransientState {
        /// Resource kind.
        resource: String,
        /// Resource id.
        resource_id: String,
        /// Its current state.
        current_state: String,
    },
    /// The resource or account is locked.
    #[error("locked: {message}")]
    Locked {
        /// Scaleway's message.
        message: String,
    },
    /// The resource is not in a state that allows the operation (e.g. deleting a running
    /// server, powering on a running one, deleting an attached volume).
    #[error("precondition failed: {message}")]
    PreconditionFailed {
        /// Scaleway's message (or help message).
        message: String,
    },
    /// Still rate limited (429) after the retries.
    #[error("rate limited by Scaleway (retries exhausted)")]
    RateLimited {
        /// The last `Retry-After`, in seconds, when given.
        retry_after_secs: Option<u64>,
    },
    /// A 5xx answer, after the retries allowed for this call.
    #[error("Scaleway server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Scaleway's message, when the body had one.
        message: String,
    },
    /// The request timed out (after the retries allowed for this call).
    #[error("request to Scaleway timed out")]
    Timeout,
    /// Connection-level failure (never contains the secret key).
    #[error("transport error: {0}")]
    Transport(String),
    /// The response could not be decoded.
    #[error("cannot decode Scaleway response: {0}")]
    Decode(String),
    /// Any other error answer.
    #[error("Scaleway error {status} {kind}: {message}")]
    Other {
        /// HTTP status.
        status: u16,
        /// Scaleway's `type`, empty when absent.
        kind: String,
        /// Scaleway's message.
        message: String,
    },
}

fn fmt_quotas(details: &[QuotaDetail]) -> String {
    if details.is_empty() {
        return "(no details)".to_string();
    }
    details
        .iter()
        .map(|d| format!("{} ({}/{})", d.resource, d.current, d.quota))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_arguments(details: &[InvalidArgument]) -> String {
    if details.is_empty() {
        return String::new();
    }
    let parts = details
        .iter()
        .map(|d| {
            if d.help_message.is_empty() {
                format!("{} ({})", d.argument_name, d.reason)
            } else {
                format!("{} ({}): {}", d.argument_name, d.reason, d.help_message)
            }
        })
        .collect::<Vec<_>>();
    format!(" [{}]", parts.join("; "))
}

impl ScalewayError {
    /// True for failures a later identical call may not hit: rate limiting, 5xx, timeouts,
    /// transport errors and transient states. (Out of stock is a capacity condition, see
    /// [`ScalewayError::is_capacity`].)
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout
                | Self::Transport(_)
                | Self::TransientState { .. }
        )
    }

    /// True when the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for "no capacity for you right now": out of stock or quota reached.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::OutOfStock { .. } | Self::QuotasExceeded { .. })
    }

    /// True when the outcome of a non-idempotent call is unknown: the request may have been
    /// applied (5xx or timeout after sending). The caller must look the resource up (by tag)
    /// before creating it again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Timeout | Self::Transport(_)
        )
    }

    /// Builds the error for a non-2xx answer from its status and body.
    pub fn from_response(status: u16, body: &[u8], retry_after_secs: Option<u64>) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let obj = json.as_ref().and_then(Value::as_object);
        let text = |key: &str| -> String {
            obj.and_then(|o| o.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let kind = text("type");
        let mut message = text("message");
        if message.is_empty() && obj.is_none() {
            message = String::from_utf8_lossy(body).chars().take(300).collect();
        }
        let details = || obj.and_then(|o| o.get("details")).cloned();

        match kind.as_str() {
            "out_of_stock" => {
                return Self::OutOfStock {
                    resource: text("resource"),
                    message,
                };
            }
            "quotas_exceeded" => {
                return Self::QuotasExceeded {
                    details: parse_list(details()),
                };
            }
            "not_found" => {
                return Self::NotFound {
                    resource: text("resource"),
                    resource_id: text("resource_id"),
                };
            }
            "unknown_resource" => {
                let (resource, resource_id) = parse_legacy_not_found(&message);
                return Self::NotFound {
                    resource,
                    resource_id,
                };
            }
            "invalid_arguments" => {
                return Self::InvalidArguments {
                    details: parse_list(details()),
                    message,
                };
            }
            "invalid_request_error" => {
                if let Some(fields) = obj.and_then(|o| o.get("fields")).and_then(Value::as_object) {
                    let details = fields
                        .iter()
                        .flat_map(|(name, msgs)| {
                            let msgs: Vec<String> = match msgs {
                                Value::Array(items) => items
                                    .iter()
                                    .filter_map(|m| m.as_str().map(str::to_string))
                                    .collect(),
                                Value::String(s) => vec![s.clone()],
                                _ => Vec::new(),
                            };
                            msgs.into_iter().map(move |m| InvalidArgument {
                                argument_name: name.clone(),
                                reason: "constraint".to_string(),
                                help_message: m,
                            })
                        })
                        .collect();
                    return Self::InvalidArguments { details, message };
                }
                let resource = text("resource");
                if status == 403 && !resource.is_empty() {
                    return Self::QuotasExceeded {
                        details: vec![QuotaDetail {
                            resource,
                            quota: 0,
                            current: 0,
                        }],
                    };
                }
                if status == 400 || status == 409 || status == 412 {
                    return Self::PreconditionFailed { message };
                }
            }
            "transient_state" => {
                return Self::TransientState {
                    resource: text("resource"),
                    resource_id: text("resource_id"),
                    current_state: text("current_state"),
                };
            }
            "locked" => return Self::Locked { message },
            "precondition_failed" => {
                let help = text("help_message");
                return Self::PreconditionFailed {
                    message: if help.is_empty() { message } else { help },
                };
            }
            "permissions_denied" => return Self::PermissionsDenied { message },
            "denied_authentication" | "authentication_error" => {
                return Self::DeniedAuthentication { message };
            }
            _ => {}
        }

        match status {
            401 => Self::DeniedAuthentication { message },
            403 => Self::PermissionsDenied { message },
            404 => Self::NotFound {
                resource: String::new(),
                resource_id: String::new(),
            },
            429 => Self::RateLimited { retry_after_secs },
            500..=599 => Self::Server { status, message },
            _ => Self::Other {
                status,
                kind,
                message,
            },
        }
    }
}

fn parse_list<T: for<'de> Deserialize<'de>>(value: Option<Value>) -> Vec<T> {
    value
        .and_then(|v| serde_json::from_value::<Vec<T>>(v).ok())
        .unwrap_or_default()
}

/// Recovers `(resource, id)` from legacy messages such as `"Volume '…' not found"` or
/// `"\"…\" not found"`.
fn parse_legacy_not_found(message: &str) -> (String, String) {
    let quote = message.find(['\'', '"']);
    let Some(start) = quote else {
        return (String::new(), String::new());
    };
    let q = &message[start..=start];
    let rest = &message[start + 1..];
    let id = rest.split(q).next().unwrap_or_default().to_string();
    let resource = message[..start].trim().to_lowercase().replace(' ', "_");
    (resource, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> ScalewayError {
        ScalewayError::from_response(status, body.as_bytes(), None)
    }

    #[test]
    fn maps_modern_types() {
        assert_eq!(
            err(
                404,
                r#"{"type":"not_found","resource":"instance_server","resource_id":"abc","message":"x"}"#
            ),
            ScalewayError::NotFound {
                resource: "instance_server".into(),
                resource_id: "abc".into()
            }
        );
        let e = err(
            403,
            r#"{"type":"quotas_exceeded","message":"q","details":[{"resource":"gpu","quota":2,"current":2}]}"#,
        );
        assert_eq!(
            e,
            ScalewayError::QuotasExceeded {
                details: vec![QuotaDetail {
                    resource: "gpu".into(),
                    quota: 2,
                    current: 2
                }]
            }
        );
        assert!(e.is_capacity());
        let e = err(
            400,
            r#"{"type":"invalid_arguments","message":"bad","details":[{"argument_name":"zone","reason":"constraint","help_message":"h"}]}"#,
        );
        assert!(
            matches!(&e, ScalewayError::InvalidArguments { details, .. } if details[0].argument_name == "zone")
        );
        assert!(e.to_string().contains("zone (constraint): h"));
        assert!(matches!(
            err(412, r#"{"type":"out_of_stock","resource":"L4-1-24G","message":"m"}"#),
            ScalewayError::OutOfStock { resource, .. } if resource == "L4-1-24G"
        ));
        assert!(matches!(
            err(409, r#"{"type":"transient_state","resource":"instance_server","resource_id":"i","current_state":"starting"}"#),
            ScalewayError::TransientState { current_state, .. } if current_state == "starting"
        ));
        assert!(matches!(
            err(412, r#"{"type":"precondition_failed","message":"m","help_message":"detach first"}"#),
            ScalewayError::PreconditionFailed { message } if message == "detach first"
        ));
        assert!(matches!(
            err(
                401,
                r#"{"type":"denied_authentication","message":"authentication is denied"}"#
            ),
            ScalewayError::DeniedAuthentication { .. }
        ));
    }

    #[test]
    fn maps_legacy_types() {
        assert_eq!(
            err(
                404,
                r#"{"type":"unknown_resource","message":"Volume '11111111-1111-4111-8111-111111111111' not found"}"#
            ),
            ScalewayError::NotFound {
                resource: "volume".into(),
                resource_id: "11111111-1111-4111-8111-111111111111".into()
            }
        );
        assert_eq!(
            err(
                404,
                r#"{"type":"unknown_resource","message":"\"abc\" not found"}"#
            ),
            ScalewayError::NotFound {
                resource: String::new(),
                resource_id: "abc".into()
            }
        );
        assert!(matches!(
            err(400, r#"{"fields":{"volumes.5.id":["92 is not a valid UUID."]},"message":"Validation Error","type":"invalid_request_error"}"#),
            ScalewayError::InvalidArguments { details, .. } if details[0].argument_name == "volumes.5.id"
        ));
        assert!(matches!(
            err(
                403,
                r#"{"type":"invalid_request_error","message":"Quota exceeded for this resource.","resource":"compute_snapshots"}"#
            ),
            ScalewayError::QuotasExceeded { .. }
        ));
        assert_eq!(
            err(
                400,
                r#"{"message":"server should be stopped","type":"invalid_request_error"}"#
            ),
            ScalewayError::PreconditionFailed {
                message: "server should be stopped".into()
            }
        );
    }

    #[test]
    fn falls_back_on_status() {
        assert!(
            matches!(err(503, "oops"), ScalewayError::Server { status: 503, message } if message == "oops")
        );
        assert!(matches!(
            err(401, ""),
            ScalewayError::DeniedAuthentication { .. }
        ));
        assert!(err(404, "").is_not_found());
        assert_eq!(
            ScalewayError::from_response(429, b"{}", Some(3)),
            ScalewayError::RateLimited {
                retry_after_secs: Some(3)
            }
        );
        assert!(matches!(
            err(418, r#"{"type":"teapot","message":"short and stout"}"#),
            ScalewayError::Other { status: 418, kind, .. } if kind == "teapot"
        ));
    }

    #[test]
    fn classification_helpers() {
        assert!(ScalewayError::Timeout.is_retryable());
        assert!(ScalewayError::Timeout.outcome_unknown());
        assert!(
            !ScalewayError::Locked {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!err(404, "").is_retryable());
    }
}
