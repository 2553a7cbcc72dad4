//! Time in the simulator: state transitions played out one step at a time.
//!
//! Each accepted action applies its first step at once (in `ops::servers::action`) and
//! spawns a task that applies the following steps, one per configured step duration (the
//! table is in the [`crate::sim`] documentation).
//!
//! A task only applies a step while the server still exists and its `generation` is the one
//! the task started with: a server stopped or deleted behind the caller's back (admin API)
//! bumps the generation or disappears, and the stale task stops.

use std::sync::Arc;

use chrono::Utc;

use super::ops::servers::Transition;
use super::world::{Shared, SimServer, SrvState, World};

/// Spawns the task playing out `transition` for server `id`.
pub(crate) fn spawn_transition(
    shared: Arc<Shared>,
    id: String,
    generation: u64,
    transition: Transition,
) {
    tokio::spawn(async move {
        run(&shared, &id, generation, transition).await;
    });
}

/// Spawns the task moving a new block volume from `creating` to `available`.
pub(crate) fn spawn_volume_creation(shared: Arc<Shared>, id: String) {
    tokio::spawn(async move {
        tokio::time::sleep(shared.settings.step).await;
        super::ops::volumes::finish_creation(&mut shared.world(), &id);
    });
}

/// Applies `step` to the server if it still exists at `generation`. False when the transition
/// is stale.
fn apply(
    shared: &Shared,
    id: &str,
    generation: u64,
    step: impl FnOnce(&mut World, &mut SimServer),
) -> bool {
    let mut world = shared.world();
    let Some(mut server) = world.servers.remove(id) else {
        return false;
    };
    let current = server.generation == generation;
    if current {
        step(&mut world, &mut server);
        server.modified = Utc::now();
    }
    world.servers.insert(id.to_string(), server);
    current
}

fn set(server: &mut SimServer, state: SrvState, detail: &str) {
    server.state = state;
    server.state_detail = detail.to_string();
}

async fn run(shared: &Arc<Shared>, id: &str, generation: u64, transition: Transition) {
    let step = shared.settings.step;
    let details: &[&str] = match transition {
        Transition::PowerOn {
            fail_allocation: true,
            ..
        } => {
            tokio::time::sleep(step).await;
            apply(shared, id, generation, |world, server| {
                set(server, SrvState::Stopped, "");
                world.release_ips(&server.id, true);
            });
            tracing::debug!(server = id, "simulated allocation failure: back to stopped");
            return;
        }
        Transition::PowerOn {
            from_in_place: false,
            ..
        } => &["provisioning node", "booting kernel", "kernel-started"],
        Transition::PowerOn {
            from_in_place: true,
            ..
        } => &["kernel-started"],
        Transition::Reboot => &[],
        Transition::PowerOff => {
            tokio::time::sleep(step).await;
            apply(shared, id, generation, |world, server| {
                set(server, SrvState::Stopped, "");
                world.release_ips(&server.id, true);
            });
            return;
        }
        Transition::StopInPlace => {
            tokio::time::sleep(step).await;
            apply(shared, id, generation, |_, server| {
                set(server, SrvState::StoppedInPlace, "");
            });
            return;
        }
        Transition::Terminate => {
            tokio::time::sleep(step).await;
            let mut world = shared.world();
            if world
                .servers
                .get(id)
                .is_some_and(|s| s.generation == generation)
            {
                world.remove_server(id);
            }
            return;
        }
    };
    for detail in details {
        tokio::time::sleep(step).await;
        if !apply(shared, id, generation, |_, server| {
            server.state_detail = (*detail).to_string();
        }) {
            return;
        }
    }
    tokio::time::sleep(step).await;
    apply(shared, id, generation, |world, server| {
        set(server, SrvState::Running, "booted");
        for ip in world.ips.values_mut() {
            if ip.server.as_deref() == Some(server.id.as_str()) {
                ip.attached = true;
            }
        }
    });
}
