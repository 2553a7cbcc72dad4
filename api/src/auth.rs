//! The operator token: every control-API route requires it until users and roles exist.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The authenticated operator, for event metadata.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

/// Only the token's SHA-256 is kept in memory; comparisons are constant-time.
#[derive(Clone)]
pub struct OperatorToken {
    hash: Arc<[u8; 32]>,
}

impl OperatorToken {
    pub fn new(token: &str) -> Self {
        Self {
            hash: Arc::new(Sha256::digest(token.as_bytes()).into()),
        }
    }

    pub fn verify(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(self.hash.as_ref()).into()
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

pub async fn require_operator(
    State(token): State<OperatorToken>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110).
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    match presented {
        Some(t) if token.verify(t) => {
            req.extensions_mut().insert(Operator("admin".into()));
            next.run(req).await
        }
        _ => {
            tracing::info!(
                path = req.uri().path(),
                "refused: missing or wrong operator token"
            );
            ApiError::unauthorized().into_response()
        }
    }
}
