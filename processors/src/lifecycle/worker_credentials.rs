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

#[cfg(test)]
mod tests {
    use super::*;
    use inferplane_domain::worker_credentials::verify_bootstrap_token;

    #[test]
    fn the_agent_env_carries_the_bootstrap_token_of_the_current_attempt() {
        use cqrs_es::Aggregate;
        use inferplane_domain::catalog::Provider;
        use inferplane_domain::instance::{Instance, InstanceEvent, InstanceRequested, VllmMode};
        let mut instance = Instance::default();
        instance.apply(InstanceEvent::InstanceRequested(InstanceRequested {
            model_id: uuid::Uuid::from_u128(1),
            model_repo: "org/model".into(),
            model_required_vram_gb: 4,
            zone: "fr-par-2".into(),
            allowed_zones: vec!["fr-par-2".into()],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            hourly_price_micro_eur: 1,
            data_volume_gb: 50,
            vllm_mode: VllmMode::Mono,
            provider: Provider::Scaleway,
        }));
        instance.apply(InstanceEvent::ReinstallRequested { attempt: 2 });
        let inst = instance.state.unwrap();
        let id = InstanceId::new_v7();
        let secret = WorkerSecret::new("s3cret-s3cret-s3cret");
        let env = agent_env(Some(&secret), Some("http://10.0.0.1:8080/"), id, &inst);
        assert_eq!(env_value(&env, "INFERPLANE_AGENT_MODEL"), Some("org/model"));
        assert_eq!(
            env_value(&env, "INFERPLANE_AGENT_CONTROL_PLANE_URL"),
            Some("http://10.0.0.1:8080")
        );
        let id_text = id.to_string();
        assert_eq!(
            env_value(&env, "INFERPLANE_AGENT_INSTANCE_ID"),
            Some(id_text.as_str())
        );
        let token = env_value(&env, BOOTSTRAP_TOKEN_VAR).unwrap();
        assert!(verify_bootstrap_token(&secret, id, 2, token));
        assert!(!verify_bootstrap_token(&secret, id, 1, token));
        assert!(agent_env(None, Some("http://x"), id, &inst).is_empty());
        assert!(agent_env(Some(&secret), None, id, &inst).is_empty());
    }
}
