//! Errors answered to clients, in the OpenAI error shape vLLM uses.
//!
//! Every error body is `{"error": {"message", "type", "param", "code"}}` with all four keys.
//! Like vLLM, `type` is the exception class name (`BadRequestError`, `NotFoundError`, ...) and
//! `code` the HTTP status as a number; the one exception is the unknown-model 404 whose `code`
//! is OpenAI's string `model_not_found`, which gateways and SDK users match on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request the engine will not serve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a missing or invalid field, an unsupported option.
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// The `model` field names no served model.
    #[error("The model `{0}` does not exist.")]
    ModelNotFound(String),
    /// The model exists but does not serve this endpoint (a generation model asked for
    /// embeddings, or the reverse).
    #[error("The model does not support {0} API")]
    UnsupportedTask(&'static str),
    /// No route.
    #[error("Not Found")]
    RouteNotFound,
    /// The waiting queue is full, or the `reject` fault picked this request.
    #[error("The engine is overloaded: {0}")]
    Overloaded(&'static str),
    /// The `dead` fault.
    #[error("The engine is dead (injected fault)")]
    Dead,
    /// The `error_500` fault.
    #[error("Internal server error (injected fault)")]
    InjectedFailure,
}

impl ApiError {
    /// A 400 with a message and the offending parameter.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::UnsupportedTask(_) => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::Overloaded(_) | Self::Dead => StatusCode::SERVICE_UNAVAILABLE,
            Self::InjectedFailure => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status() {
            StatusCode::BAD_REQUEST => "BadRequestError",
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
            _ => "InternalServerError",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let param = match self {
            Self::BadRequest { param, .. } => param.clone(),
            Self::ModelNotFound(_) => Some("model".to_owned()),
            _ => None,
        };
        let code = match self {
            Self::ModelNotFound(_) => json!("model_not_found"),
            other => json!(other.status().as_u16()),
        };
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.error_type(),
                "param": param,
                "code": code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_all_four_keys() {
        for error in [
            ApiError::bad_request("bad", Some("n")),
            ApiError::ModelNotFound("x".into()),
            ApiError::Dead,
            ApiError::InjectedFailure,
        ] {
            let body = error.body();
            for key in ["message", "type", "param", "code"] {
                assert!(body["error"].get(key).is_some(), "{key} missing in {body}");
            }
        }
        let not_found = ApiError::ModelNotFound("x".into()).body();
        assert_eq!(not_found["error"]["code"], "model_not_found");
        assert_eq!(not_found["error"]["type"], "NotFoundError");
        assert_eq!(
            ApiError::bad_request("b", None).body()["error"]["code"],
            400
        );
    }
}
