//! The worker directory: which instances serve which model, whether they take traffic, and
//! how loaded they are — and the choice of a worker for a request.
//!
//! - **Routable** comes from the instance's events: ready, and not since unavailable, failed,
//!   draining, reinstalling or terminating. A stale worker agent turns its instance
//!   unavailable (an event), so it leaves the candidates as soon as that event is read.
//! - **Load** is this process's in-flight requests to the worker plus the queue depth the
//!   worker last reported (telemetry, refreshed in the background).
//! - **Choice**: with a session id, rendezvous hashing over the candidates (the same session
//!   goes to the same worker from any gateway process; removing a worker moves only its own
//!   sessions); without one, the less loaded of two random candidates.
//! - **Cooldown**: a worker that refused a connection or answered 5xx is skipped for a while,
//!   unless nothing else serves the model.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use inferplane_domain::instance::InstanceEvent;
use rand::Rng;
use uuid::Uuid;

/// A worker's live counters, shared by every request routed to it.
#[derive(Debug)]
pub struct WorkerLoad {
    pub inflight: AtomicU32,
    /// Requests waiting in the engine's queue, as last reported.
    pub waiting: AtomicU32,
    /// Milliseconds since the directory's epoch until which the worker is cooled down.
    cooldown_until_ms: AtomicU64,
    pub failures: AtomicU64,
}

impl WorkerLoad {
    fn new() -> Self {
        Self {
            inflight: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            cooldown_until_ms: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn load(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed) + self.waiting.load(Ordering::Relaxed)
    }
}

/// A candidate chosen for one request.
#[derive(Debug, Clone)]
pub struct Worker {
    pub instance_id: Uuid,
    pub base_url: Arc<str>,
    pub load: Arc<WorkerLoad>,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    model: Option<String>,
    /// `http://<ip>:<engine port>`, built once when the server's address is known.
    base_url: Option<Arc<str>>,
    routable: bool,
    load: Option<Arc<WorkerLoad>>,
}

#[derive(Default)]
struct Inner {
    instances: HashMap<Uuid, Entry>,
    /// Model ids registered in the catalog (so an unserved known model is a 503, not a 404).
    catalog: HashSet<String>,
}

/// Instance event types that change routing; the rest are skipped without decoding.
pub const ROUTING_EVENTS: &[&str] = &[
    "InstanceRequested",
    "ServerStarted",
    "InstanceReady",
    "InstanceUnavailable",
    "InstanceFailed",
    "TerminationRequested",
    "InstanceTerminated",
    "DrainStarted",
    "ReinstallRequested",
    "ProviderServerStopped",
    "ProviderServerDeleted",
    "InstanceArchived",
];

#[derive(Clone)]
pub struct Directory {
    inner: Arc<RwLock<Inner>>,
    engine_port: u16,
    epoch: Instant,
}

/// Result of looking for workers of a model.
pub enum Candidates {
    Some(Vec<Worker>),
    /// Known model, but no worker takes traffic now.
    NoWorker,
    /// Neither served nor in the catalog.
    UnknownModel,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: a stable, well-spread hash across processes and releases.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The rendezvous weight of `worker` for `session`.
pub fn rendezvous_weight(session: &str, worker: Uuid) -> u64 {
    mix(fnv1a(session.as_bytes()) ^ mix(worker.as_u128() as u64 ^ (worker.as_u128() >> 64) as u64))
}

impl Directory {
    pub fn new(engine_port: u16) -> Self {
        Self {
            inner: Arc::default(),
            engine_port,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Applies an instance event (only [`ROUTING_EVENTS`] matter).
    pub fn apply_instance(&self, id: Uuid, event: &InstanceEvent) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let entry = inner.instances.entry(id).or_default();
        match event {
            InstanceEvent::InstanceRequested(r) => entry.model = Some(r.model_repo.clone()),
            InstanceEvent::ServerStarted { public_ip } => {
                let host = if public_ip.contains(':') {
                    format!("[{public_ip}]")
                } else {
                    public_ip.clone()
                };
                entry.base_url = Some(format!("http://{host}:{}", self.engine_port).into());
            }
            InstanceEvent::InstanceReady => {
                entry.routable = true;
                entry
                    .load
                    .get_or_insert_with(|| Arc::new(WorkerLoad::new()));
            }
            InstanceEvent::InstanceTerminated | InstanceEvent::InstanceArchived => {
                inner.instances.remove(&id);
            }
            InstanceEvent::InstanceUnavailable { .. }
            | InstanceEvent::InstanceFailed { .. }
            | InstanceEvent::TerminationRequested { .. }
            | InstanceEvent::DrainStarted
            | InstanceEvent::ReinstallRequested { .. }
            | InstanceEvent::ProviderServerStopped
            | InstanceEvent::ProviderServerDeleted { .. } => entry.routable = false,
            _ => {}
        }
    }

    /// Records that the catalog knows model id `repo`.
    pub fn add_catalog_model(&self, repo: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.catalog.insert(repo.to_string());
    }

    /// Sets the queue depth a worker reported.
    pub fn set_waiting(&self, id: Uuid, waiting: u32) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if let Some(load) = inner.instances.get(&id).and_then(|e| e.load.as_ref()) {
            load.waiting.store(waiting, Ordering::Relaxed);
        }
    }

    /// Forgets everything (before a reload).
    pub fn clear(&self) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Inner::default();
    }

    /// Models served by at least one routable worker, sorted.
    pub fn served_models(&self) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut models: Vec<String> = inner
            .instances
            .values()
            .filter(|e| e.routable && e.base_url.is_some())
            .filter_map(|e| e.model.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        models.sort();
        models
    }

    /// Whether some routable worker serves `model` (no allocation: the request path uses it).
    pub fn serves(&self, model: &str) -> bool {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .instances
            .values()
            .any(|e| e.routable && e.model.as_deref() == Some(model))
    }

    /// Every routable worker with its model and load, for metrics and the console.
    pub fn snapshot(&self) -> Vec<(Uuid, String, u32, bool)> {
        let now = self.now_ms();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .instances
            .iter()
            .filter(|(_, e)| e.routable)
            .filter_map(|(id, e)| {
                let load = e.load.as_ref()?;
                Some((
                    *id,
                    e.model.clone()?,
                    load.load(),
                    load.cooldown_until_ms.load(Ordering::Relaxed) > now,
                ))
            })
            .collect()
    }

    /// The routable workers of `model`, cooled-down ones only when nothing else is left.
    pub fn candidates(&self, model: &str, exclude: &[Uuid]) -> Candidates {
        let now = self.now_ms();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut known = inner.catalog.contains(model);
        let mut warm = Vec::new();
        let mut cooling = Vec::new();
        for (id, e) in &inner.instances {
            if e.model.as_deref() != Some(model) {
                continue;
            }
            known = true;
            let (true, Some(base_url), Some(load)) = (e.routable, &e.base_url, &e.load) else {
                continue;
            };
            if exclude.contains(id) {
                continue;
            }
            let w = Worker {
                instance_id: *id,
                base_url: base_url.clone(),
                load: load.clone(),
            };
            if load.cooldown_until_ms.load(Ordering::Relaxed) > now {
                cooling.push(w);
            } else {
                warm.push(w);
            }
        }
        let list = if warm.is_empty() { cooling } else { warm };
        match (list.is_empty(), known) {
            (false, _) => Candidates::Some(list),
            (true, true) => Candidates::NoWorker,
            (true, false) => Candidates::UnknownModel,
        }
    }

    /// Cools a worker down after a failure.
    pub fn cool_down(&self, worker: &Worker, period: Duration) {
        let until = self.now_ms() + period.as_millis() as u64;
        worker
            .load
            .cooldown_until_ms
            .store(until, Ordering::Relaxed);
        worker.load.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Picks a worker: rendezvous hashing for a session, else power of two choices on load.
pub fn choose(mut candidates: Vec<Worker>, session: Option<&str>) -> Option<Worker> {
    match candidates.len() {
        0 => None,
        1 => candidates.pop(),
        n => {
            if let Some(session) = session {
                return candidates
                    .into_iter()
                    .max_by_key(|w| rendezvous_weight(session, w.instance_id));
            }
            let mut rng = rand::rng();
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            let pick = if candidates[b].load.load() < candidates[a].load.load() {
                b
            } else {
                a
            };
            Some(candidates.swap_remove(pick))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(dir: &Directory, model: &str, ip: &str) -> Uuid {
        let id = Uuid::now_v7();
        dir.apply_instance(
            id,
            &InstanceEvent::ServerStarted {
                public_ip: ip.into(),
            },
        );
        let mut inner = dir.inner.write().unwrap();
        inner.instances.get_mut(&id).unwrap().model = Some(model.into());
        drop(inner);
        dir.apply_instance(id, &InstanceEvent::InstanceReady);
        id
    }

    fn workers(dir: &Directory, model: &str) -> Vec<Worker> {
        match dir.candidates(model, &[]) {
            Candidates::Some(w) => w,
            _ => vec![],
        }
    }

    #[test]
    fn sessions_stick_and_only_a_removed_workers_sessions_move() {
        let dir = Directory::new(8000);
        let ids: Vec<Uuid> = (0..5)
            .map(|i| ready(&dir, "m", &format!("127.0.0.{}", i + 2)))
            .collect();
        let sessions: Vec<String> = (0..2000).map(|i| format!("session-{i}")).collect();
        let before: Vec<Uuid> = sessions
            .iter()
            .map(|s| choose(workers(&dir, "m"), Some(s)).unwrap().instance_id)
            .collect();
        // Deterministic: the same answer again.
        for (s, b) in sessions.iter().zip(&before) {
            assert_eq!(choose(workers(&dir, "m"), Some(s)).unwrap().instance_id, *b);
        }
        // Spread over every worker.
        for id in &ids {
            let share = before.iter().filter(|b| *b == id).count();
            assert!(share > 200, "worker {id} got {share} of 2000 sessions");
        }
        dir.apply_instance(ids[2], &InstanceEvent::DrainStarted);
        for (s, b) in sessions.iter().zip(&before) {
            let after = choose(workers(&dir, "m"), Some(s)).unwrap().instance_id;
            if *b == ids[2] {
                assert_ne!(after, ids[2]);
            } else {
                assert_eq!(after, *b, "a session of a remaining worker moved");
            }
        }
    }

    #[test]
    fn power_of_two_prefers_the_less_loaded_and_cooldown_skips_failing_workers() {
        let dir = Directory::new(8000);
        let busy = ready(&dir, "m", "127.0.0.2");
        let idle = ready(&dir, "m", "127.0.0.3");
        let ws = workers(&dir, "m");
        let busy_w = ws.iter().find(|w| w.instance_id == busy).unwrap().clone();
        busy_w.load.inflight.store(10, Ordering::Relaxed);
        for _ in 0..50 {
            assert_eq!(choose(workers(&dir, "m"), None).unwrap().instance_id, idle);
        }
        let idle_w = ws.iter().find(|w| w.instance_id == idle).unwrap().clone();
        dir.cool_down(&idle_w, Duration::from_secs(60));
        assert_eq!(choose(workers(&dir, "m"), None).unwrap().instance_id, busy);
        // Everything cooling: still served rather than refused.
        dir.cool_down(&busy_w, Duration::from_secs(60));
        assert_eq!(workers(&dir, "m").len(), 2);
        assert!(matches!(
            dir.candidates("other", &[]),
            Candidates::UnknownModel
        ));
        dir.add_catalog_model("other");
        assert!(matches!(dir.candidates("other", &[]), Candidates::NoWorker));
        assert!(matches!(
            dir.candidates("m", &[busy, idle]),
            Candidates::NoWorker
        ));
        assert_eq!(dir.served_models(), vec!["m".to_string()]);
        assert_eq!(
            workers(&dir, "m")[0].base_url.as_ref().len(),
            "http://127.0.0.2:8000".len()
        );
    }
}
