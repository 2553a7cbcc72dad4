//! Calls to the control plane: register, heartbeat.

use std::time::Duration;

use super::protocol::{
    Heartbeat, HeartbeatResponse, RegisterRequest, RegisterResponse, UNKNOWN_WORKER_TOKEN,
};

/// Why a call to the control plane did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The control plane does not know the worker token (any more): register again.
    #[error("the control plane does not know this worker token")]
    UnknownToken,
    /// The control plane refused the call for good (bad bootstrap token, wrong address,
    /// already registered...): `code` is its problem code.
    #[error("refused ({status}): {code}: {detail}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
    /// The control plane is down, slow or failing: retry with backoff.
    #[error("control plane unavailable: {0}")]
    Unavailable(String),
}

/// The control plane at `base`.
#[derive(Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    base: String,
}

impl ControlPlane {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, CallError> {
        let r = self
            .http
            .post(format!("{}/api/workers/register", self.base))
            .timeout(Duration::from_secs(10))
            .json(req)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        decode(r).await
    }

    pub async fn heartbeat(
        &self,
        token: &str,
        hb: &Heartbeat,
    ) -> Result<HeartbeatResponse, CallError> {
        let r = self
            .http
            .post(format!("{}/api/workers/heartbeat", self.base))
            .timeout(Duration::from_secs(10))
            .bearer_auth(token)
            .json(hb)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        decode(r).await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, CallError> {
    let status = r.status();
    if status.is_success() {
        return r
            .json()
            .await
            .map_err(|e| CallError::Unavailable(format!("unreadable answer: {e}")));
    }
    let problem: serde_json::Value = r.json().await.unwrap_or_default();
    let code = problem["code"].as_str().unwrap_or_default().to_string();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(CallError::Unavailable(format!("{status} {code}")));
    }
    if status.as_u16() == 401 && code == UNKNOWN_WORKER_TOKEN {
        return Err(CallError::UnknownToken);
    }
    Err(CallError::Refused {
        status: status.as_u16(),
        code,
        detail: problem["detail"].as_str().unwrap_or_default().to_string(),
    })
}
