//! Extractors that turn bad input into problem JSON naming the field at fault.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use bytes::Bytes;
use inferplane_domain::{Actor, DEFAULT_TENANT, EventMetadata};
use inferplane_store::{CommandContext, Idempotency};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Operator;
use crate::error::ApiError;

/// A JSON body parsed strictly: `application/json` only, unknown fields and wrong types
/// refused with the path of the offending field. Keeps a digest of the raw body for
/// idempotency fingerprints.
pub struct StrictJson<T> {
    pub value: T,
    pub digest: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            ApiError::invalid_field(field, e.inner().to_string())
        })?;
        Ok(Self { value, digest })
    }
}

/// An optional JSON body: a request without a body (no `Content-Type`, no length) is `None`;
/// any body is parsed as strictly as a required one.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let h = req.headers();
        let no_body = h.get(header::CONTENT_TYPE).is_none()
            && h.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0")
            && h.get(header::TRANSFER_ENCODING).is_none();
        if no_body {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            "the request body is larger than the configured limit",
        )
    } else {
        ApiError::bad_request("unreadable-body", r.body_text())
    }
}

/// Query parameters; unknown or malformed ones are refused with the parameter named.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::invalid_field("query", r.body_text()))
    }
}

/// A UUID path segment; anything else is an unknown resource.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|r: PathRejection| ApiError::bad_request("invalid-path", r.body_text()))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::not_found(format!("no resource with id {raw:?}")))
    }
}

/// What every command needs from its request: metadata for its events, `If-Match`, and the
/// `Idempotency-Key`.
pub struct CommandMeta {
    pub context: CommandContext,
    method: Method,
    path: String,
}

impl CommandMeta {
    /// Completes the idempotency fingerprint with the body digest (empty for bodiless calls).
    pub fn with_body(mut self, digest: &str) -> CommandContext {
        if let Some(idem) = self.context.idempotency.as_mut() {
            idem.fingerprint = hex::encode(Sha256::digest(format!(
                "{} {} {digest}",
                self.method, self.path
            )));
        }
        self.context
    }

    pub fn without_body(self) -> CommandContext {
        self.with_body("")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CommandMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // A header that is present but not visible ASCII is refused, never silently ignored.
        let mut unreadable = None;
        for name in ["x-correlation-id", "idempotency-key", "if-match"] {
            if parts.headers.get(name).is_some_and(|v| v.to_str().is_err()) {
                unreadable = Some(name);
            }
        }
        if let Some(name) = unreadable {
            return Err(ApiError::invalid_field(name, "must be visible ASCII"));
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // Bounded: it is stored with every event the request causes.
        let request_id = header("x-request-id").map(|v| v.chars().take(128).collect());
        let correlation_id = match header("x-correlation-id") {
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::invalid_field("x-correlation-id", "must be a UUID"))?,
            None => Uuid::now_v7(),
        };
        let idempotency = match header("idempotency-key") {
            Some(key) if key.is_empty() || key.len() > 255 => {
                return Err(ApiError::invalid_field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible characters",
                ));
            }
            Some(key) => Some(Idempotency {
                key: key.to_string(),
                fingerprint: String::new(),
            }),
            None => None,
        };
        let expected_version = match header("if-match") {
            Some(v) => Some(
                v.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .parse::<i64>()
                    .map_err(|_| {
                        ApiError::invalid_field("If-Match", "must be an ETag of this API")
                    })?,
            ),
            None => None,
        };
        let actor = parts.extensions.get::<Operator>().map_or_else(
            || Actor::operator("admin"),
            |o| Actor::operator(o.0.clone()),
        );
        let command_id = Uuid::now_v7();
        Ok(Self {
            context: CommandContext {
                metadata: EventMetadata {
                    correlation_id,
                    causation_id: format!("command:{command_id}"),
                    actor,
                    request_id,
                    tenant_id: DEFAULT_TENANT,
                },
                expected_version,
                idempotency,
            },
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
        })
    }
}
