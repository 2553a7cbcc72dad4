//! One error type for the control API, rendered as RFC 9457 problem JSON.
//!
//! Domain rejections and client mistakes keep their detail; infrastructure failures are logged
//! with their whole chain and answered with a bare 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inferplane_domain::instance::InstanceError;
use inferplane_store::CommandError;
use serde::Serialize;

/// A field-level complaint, for bodies and query strings.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code; the problem `type` is `/problems/<code>`.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            if field.is_empty() {
                message.clone()
            } else {
                format!("{field}: {message}")
            },
        );
        e.errors.push(FieldError { field, message });
        e
    }

    /// Names `field` as the one at fault, keeping status and code.
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid operator token is required (Authorization: Bearer <token>)",
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"inferplane\""),
        ));
        e
    }

    /// Logs the failure with its chain and hides it from the client.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::error!(error = format!("{error:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request failed; see the server log with this request's x-request-id",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Maps a command failure; `rejection` decides status and code of the domain's own errors.
pub fn command_error<E: std::error::Error>(
    e: CommandError<E>,
    rejection: impl FnOnce(E) -> ApiError,
) -> ApiError {
    match e {
        CommandError::Rejected(e) => rejection(e),
        CommandError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            format!("{e}; read it again and retry"),
        ),
        CommandError::IdempotencyKeyReused => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            e.to_string(),
        ),
        CommandError::Store(e) => ApiError::internal(e),
    }
}

/// Maps a refusal of the instance aggregate: `404` for an unknown instance, `422` when the
/// request itself is invalid (whatever the state), `409` when the instance's state, or the
/// catalog's, does not allow it now. The problem code is the error's stable code. Errors
/// about one field of `POST /api/instances` name it.
pub fn instance_rejection(e: InstanceError) -> ApiError {
    use InstanceError as E;
    let status = match &e {
        E::NotFound => StatusCode::NOT_FOUND,
        E::InvalidZone { .. }
        | E::InvalidInstanceType { .. }
        | E::InvalidGpuSpec { .. }
        | E::InvalidModelRepo { .. }
        | E::IncompatibleModel { .. }
        | E::InvalidDataVolume { .. }
        | E::InvalidPrice { .. }
        | E::InvalidAttempt { .. }
        | E::InvalidResourceId { .. }
        | E::ZoneNotAllowed { .. }
        | E::InvalidIp { .. }
        | E::InvalidHostKey
        | E::InvalidPhase { .. }
        | E::ChunkTooLarge { .. }
        | E::InvalidTokenHash
        | E::InvalidModelName { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        E::WorkerAddressMismatch { .. } => StatusCode::FORBIDDEN,
        E::IllegalTransition { .. }
        | E::AlreadyRequested
        | E::ModelInactive { .. }
        | E::TypeNotAvailableInZone { .. }
        | E::ZoneMismatch { .. }
        | E::ServerAlreadyCreated { .. }
        | E::ServerMismatch { .. }
        | E::NoServer
        | E::UnknownVolume { .. }
        | E::VolumeDeleted { .. }
        | E::PowerOnNotRequested { .. }
        | E::IpMismatch { .. }
        | E::HostKeyChanged { .. }
        | E::PhaseNotStarted { .. }
        | E::PhaseConflict { .. }
        | E::InstallPhaseFailed { .. }
        | E::CheckNotAllowed { .. }
        | E::ReadinessIncomplete { .. }
        | E::ResourcesRemain { .. }
        | E::ReinstallNotPossible { .. }
        | E::StaleInstallAttempt { .. }
        | E::WorkerAlreadyRegistered { .. }
        | E::NoWorker
        | E::WorkerUnhealthy { .. } => StatusCode::CONFLICT,
    };
    let field = match &e {
        E::InvalidZone { .. } => Some("zone"),
        E::InvalidInstanceType { .. } | E::IncompatibleModel { .. } => Some("instance_type"),
        E::InvalidModelRepo { .. } | E::ModelInactive { .. } => Some("model"),
        E::InvalidDataVolume { .. } => Some("data_volume_gb"),
        _ => None,
    };
    let detail = e.to_string();
    let problem = ApiError::new(status, e.code(), "Refused by the instance", detail.clone());
    match field {
        Some(field) => problem.with_field(field, detail),
        None => problem,
    }
}
