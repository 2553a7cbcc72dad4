//! The worker agent of an instance: its registration (once per install attempt) and the
//! meaningful changes its heartbeats report (health, models).

use super::{Ctx, Decision, attempt_number, bounded, nothing};
use crate::instance::{InstanceError, InstanceEvent, InstanceStatus as S};
use crate::worker_credentials::is_token_hash;

/// Where a worker agent may exist: from the bootstrap (the agent starts during the install)
/// to serving, and while draining.
const WITH_WORKER: [S; 5] = [
    S::Installing,
    S::Starting,
    S::Ready,
    S::Unavailable,
    S::Draining,
];

/// Where an agent may register: it starts during the install and re-registers after a
/// restart that lost its token, until the instance leaves service.
const REGISTRABLE: [S; 4] = [S::Installing, S::Starting, S::Ready, S::Unavailable];

/// The most models one worker may list.
const MAX_MODELS: usize = 64;

pub(super) fn register(
    cx: &Ctx<'_>,
    attempt: u32,
    token_hash: &str,
    agent_version: &str,
    from_ip: Option<&str>,
) -> Decision {
    let attempt = attempt_number(attempt)?;
    if !is_token_hash(token_hash) {
        return Err(InstanceError::InvalidTokenHash);
    }
    if let Some(w) = &cx.s.worker
        && w.attempt == attempt
    {
        return if w.token_hash == token_hash {
            nothing()
        } else {
            Err(InstanceError::WorkerAlreadyRegistered { attempt })
        };
    }
    let current = cx.s.install.attempt;
    if attempt != current {
        return Err(InstanceError::StaleInstallAttempt {
            current,
            got: attempt,
        });
    }
    cx.require(&REGISTRABLE)?;
    if let Some(ip) = from_ip {
        let recorded = cx.s.public_ip.clone().unwrap_or_default();
        if !same_ip(&recorded, ip) {
            return Err(InstanceError::WorkerAddressMismatch {
                recorded,
                got: ip.chars().take(64).collect(),
            });
        }
    }
    let agent_version: String = agent_version.trim().chars().take(64).collect();
    Ok(vec![InstanceEvent::WorkerRegistered {
        attempt,
        token_hash: token_hash.to_string(),
        agent_version: if agent_version.is_empty() {
            "unknown".to_string()
        } else {
            agent_version
        },
    }])
}

/// Addresses compared as addresses (`::ffff:1.2.3.4` is `1.2.3.4`), else as text.
fn same_ip(recorded: &str, got: &str) -> bool {
    use std::net::IpAddr;
    let canonical = |s: &str| {
        s.trim().parse::<IpAddr>().ok().map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        })
    };
    match (canonical(recorded), canonical(got)) {
        (Some(a), Some(b)) => a == b,
        _ => recorded.trim() == got.trim(),
    }
}

pub(super) fn health(cx: &Ctx<'_>, healthy: bool, reason: &str) -> Decision {
    let Some(w) = &cx.s.worker else {
        cx.require(&WITH_WORKER)?;
        return Err(InstanceError::NoWorker);
    };
    if w.healthy == Some(healthy) {
        return nothing();
    }
    cx.require(&WITH_WORKER)?;
    Ok(vec![InstanceEvent::WorkerHealthChanged {
        healthy,
        reason: bounded(reason),
    }])
}

pub(super) fn models(cx: &Ctx<'_>, models: Vec<String>) -> Decision {
    let models = model_set(models)?;
    let Some(w) = &cx.s.worker else {
        cx.require(&WITH_WORKER)?;
        return Err(InstanceError::NoWorker);
    };
    if w.models == models {
        return nothing();
    }
    cx.require(&WITH_WORKER)?;
    Ok(vec![InstanceEvent::WorkerModelsChanged { models }])
}

/// Trimmed, sorted, without duplicates; each name 1 to 256 characters, at most 64.
fn model_set(models: Vec<String>) -> Result<Vec<String>, InstanceError> {
    let mut set = Vec::with_capacity(models.len());
    for m in models {
        let m = m.trim();
        if m.is_empty() || m.chars().count() > 256 || m.chars().any(char::is_control) {
            return Err(InstanceError::InvalidModelName {
                value: m.chars().take(64).collect(),
            });
        }
        set.push(m.to_string());
    }
    set.sort();
    set.dedup();
    if set.len() > MAX_MODELS {
        return Err(InstanceError::InvalidModelName {
            value: format!("{} models", set.len()),
        });
    }
    Ok(set)
}
