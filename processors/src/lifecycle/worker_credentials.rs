//! What the bootstrap gives a VM's worker agent: its environment, with the one-time bootstrap
//! token derived from the worker secret and the install attempt (see
//! [`inferplane_domain::worker_credentials`]). The SSH installer writes these variables to the
//! agent's env file; the local installer starts its in-process agent from the same list.

use inferplane_domain::instance::{InstanceId, InstanceState};
pub use inferplane_domain::worker_credentials::{WorkerSecret, bootstrap_token};

/// The agent's bootstrap token variable.
pub const BOOTSTRAP_TOKEN_VAR: &str = "INFERPLANE_AGENT_BOOTSTRAP_TOKEN";

/// The environment of the agent of install attempt `inst.install.attempt` of instance `id`:
/// instance id, control plane URL, model, bootstrap token. Nothing when the control plane has
/// no worker secret or no URL to give (no agent can register then).
pub fn agent_env(
    secret: Option<&WorkerSecret>,
    control_plane_url: Option<&str>,
    id: InstanceId,
    inst: &InstanceState,
) -> Vec<(String, String)> {
    let (Some(secret), Some(url)) = (secret, control_plane_url) else {
        return Vec::new();
    };
    vec![
        ("INFERPLANE_AGENT_INSTANCE_ID".into(), id.to_string()),
        (
            "INFERPLANE_AGENT_CONTROL_PLANE_URL".into(),
            url.trim_end_matches('/').to_string(),
        ),
        ("INFERPLANE_AGENT_MODEL".into(), inst.model_repo.clone()),
        (
            BOOTSTRAP_TOKEN_VAR.into(),
            bootstrap_token(secret, id, inst.install.attempt),
        ),
    ]
}

/// The value of `name` in an environment list.
pub fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
