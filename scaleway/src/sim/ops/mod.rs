//! Operations on the simulated world, one module per API family. Each takes the locked
//! [`World`](super::world::World) and returns either a result to render or a [`SimError`].

mod create_server;
pub(crate) mod ips;
pub(crate) mod products;
pub(crate) mod servers;
pub(crate) mod volumes;

use serde::de::DeserializeOwned;

use super::config::Settings;
use super::error::SimError;

/// Parses a JSON body; an empty body reads as `{}`. Malformed JSON is a 400
/// `invalid_arguments` naming the problem.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| SimError::argument("body", "format", e.to_string()))
}

/// Refuses a project other than the simulator's (when it has one).
pub(crate) fn check_project(
    settings: &Settings,
    project: &str,
    resource: &'static str,
) -> Result<(), SimError> {
    match &settings.project_id {
        Some(own) if own != project => Err(SimError::PermissionsDenied {
            resource,
            action: "write",
        }),
        _ => Ok(()),
    }
}
