//! The processor runtime: events become durable work, steps run once per subject at a time,
//! a crash between a side effect and its record repeats the step (not the side effect, when the
//! step looks before it acts), and of two processes only one acts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferplane_domain::model::{Model, ModelCommand, ModelId, ModelTask, RegisterModel};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_processors::{Next, Processor, ProcessorRunner, RunnerSettings, WakeMemory, Work};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{CommandContext, EventStore, Notifier, StoredEvent};
use tokio::sync::{Semaphore, watch};

/// The outside world of the toy processor: resources keyed by subject, and every call made.
#[derive(Default)]
struct World {
    resources: HashMap<String, u32>,
    creates: u32,
    steps: u32,
}

/// Deactivates every registered model after "creating a resource" for it, looking the resource
/// up first, as the real processors look up tagged servers before creating one.
struct Deactivator {
    store: EventStore,
    world: Arc<Mutex<World>>,
    /// When set, each step waits for a permit between the side effect and the record.
    gate: Option<Arc<Semaphore>>,
    /// Subjects whose first step asks to be looked at again shortly.
    poll_first: bool,
}

#[async_trait::async_trait]
impl Processor for Deactivator {
    fn name(&self) -> &'static str {
        "deactivator"
    }

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        model_subject(event)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        let first = {
            let mut w = self.world.lock().unwrap();
            w.steps += 1;
            w.steps == 1
        };
        if self.poll_first && first {
            return Ok(Next::After(Duration::from_millis(30)));
        }
        let model = self
            .store
            .load::<Model>(&work.subject, None)
            .await?
            .aggregate;
        let Some(state) = model.state else {
            return Ok(Next::Done);
        };
        if !state.active {
            return Ok(Next::Done);
        }
        {
            let mut w = self.world.lock().unwrap();
            if !w.resources.contains_key(&work.subject) {
                w.creates += 1;
                w.resources.insert(work.subject.clone(), 1);
            }
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await?.forget();
        }
        let ctx = CommandContext::new(work.metadata());
        self.store
            .execute::<Model>(&work.subject, ModelCommand::Deactivate, &(), &ctx)
            .await?;
        Ok(Next::Done)
    }
}

struct Process {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _notifier: Notifier,
}

async fn process(db: &TestDatabase, processor: Deactivator) -> Process {
    let settings = RunnerSettings {
        poll_interval: Duration::from_millis(200),
        batch_size: 5,
        concurrency: 4,
        backoff_base: Duration::from_millis(20),
        ..RunnerSettings::default()
    };
    run(db.second_pool(5).await, Arc::new(processor), settings)
}

/// Runs `processor` as a process of its own would, on `pool`.
fn run(pool: sqlx::PgPool, processor: Arc<dyn Processor>, settings: RunnerSettings) -> Process {
    let notifier = Notifier::spawn(pool.clone());
    let runner = ProcessorRunner {
        processor,
        pool,
        wakeups: notifier.subscribe(),
        settings,
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    Process {
        stop,
        task,
        _notifier: notifier,
    }
}

/// The subject of every model event (the test processors look after models).
fn model_subject(event: &StoredEvent) -> Option<String> {
    (event.aggregate_type == "model").then(|| event.aggregate_id.clone())
}

async fn register(store: &EventStore, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let repo = format!("org/model-{i}");
        let cmd = ModelCommand::Register(RegisterModel {
            hf_repo_id: repo.clone(),
            display_name: format!("Model {i}"),
            parameter_count: 1_000_000_000,
            required_vram_gb: 8,
            context_length: 4096,
            data_volume_gb: None,
            task: ModelTask::Generate,
            active: true,
        });
        let id = ModelId::for_repo(&repo).to_string();
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
        store.execute::<Model>(&id, cmd, &(), &ctx).await.unwrap();
        ids.push(id);
    }
    ids
}

async fn active_count(store: &EventStore, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        let m = store.load::<Model>(id, None).await.unwrap().aggregate;
        if m.state.is_some_and(|s| s.active) {
            n += 1;
        }
    }
    n
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A processor whose steps run through.
fn deactivator(store: &EventStore, world: &Arc<Mutex<World>>) -> Deactivator {
    Deactivator {
        store: store.clone(),
        world: world.clone(),
        gate: None,
        poll_first: false,
    }
}

/// A processor whose steps stop for good between the side effect and its record.
fn held_after_side_effect(store: &EventStore, world: &Arc<Mutex<World>>) -> Deactivator {
    Deactivator {
        store: store.clone(),
        world: world.clone(),
        gate: Some(Arc::new(Semaphore::new(0))),
        poll_first: false,
    }
}

/// A process leading after one was killed with its steps between side effect and record: it
/// records what the first could not, creates nothing twice, and empties the work list.
async fn next_leader_finishes(
    db: &TestDatabase,
    store: &EventStore,
    world: &Arc<Mutex<World>>,
    ids: &[String],
) {
    let next = process(db, deactivator(store, world)).await;
    eventually("recorded by the next leader", async || {
        active_count(store, ids).await == 0
    })
    .await;
    assert_eq!(
        world.lock().unwrap().creates,
        ids.len() as u32,
        "no resource created twice"
    );
    eventually("empty work list", async || work_rows(db).await == 0).await;
    next.stop().await;
}

async fn work_rows(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("select count(*) from processor_work where processor = 'deactivator'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_woken_subject_is_stepped_until_done_and_leaves_the_work_list() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let p = process(&db, deactivator(&store, &world)).await;
    let ids = register(&store, 12).await;
    eventually("all models deactivated", async || {
        active_count(&store, &ids).await == 0
    })
    .await;
    eventually("empty work list", async || work_rows(&db).await == 0).await;
    assert_eq!(world.lock().unwrap().creates, 12);
    // The checkpoint passed every event (12 registrations + 12 deactivations).
    eventually("checkpoint at the head", async || {
        let seen: i64 = sqlx::query_scalar(
            "select events_seen from processor_checkpoints where name = 'deactivator'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        seen == 24
    })
    .await;
    // What the processor recorded says who did it and why.
    let meta: serde_json::Value = sqlx::query_scalar(
        "select metadata from events where event_type = 'ModelDeactivated' order by position limit 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(meta["actor"]["kind"], "processor");
    assert_eq!(meta["actor"]["id"], "deactivator");
    assert!(meta["causation_id"].as_str().unwrap().starts_with("event:"));
    p.stop().await;
}

#[tokio::test]
async fn a_step_asking_to_look_again_is_stepped_again() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let p = process(
        &db,
        Deactivator {
            store: store.clone(),
            world: world.clone(),
            gate: None,
            poll_first: true,
        },
    )
    .await;
    let ids = register(&store, 1).await;
    eventually("deactivated after a second look", async || {
        active_count(&store, &ids).await == 0
    })
    .await;
    assert!(world.lock().unwrap().steps >= 2);
    p.stop().await;
}

#[tokio::test]
async fn a_crash_between_side_effect_and_record_repeats_the_step_not_the_side_effect() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let first = process(&db, held_after_side_effect(&store, &world)).await;
    let ids = register(&store, 3).await;
    eventually("three side effects made", async || {
        world.lock().unwrap().creates == 3
    })
    .await;
    // The rows are written behind the steps: wait for them, so that this is a crash after
    // the work was made durable (the test below covers one before).
    eventually("the work list written", async || work_rows(&db).await == 3).await;
    // Killed: steps stuck between the provider call and recording it.
    first.task.abort();
    let _ = first.task.await;
    assert_eq!(active_count(&store, &ids).await, 3, "nothing was recorded");
    assert_eq!(work_rows(&db).await, 3, "the work survives the crash");

    next_leader_finishes(&db, &store, &world, &ids).await;
}

#[tokio::test]
async fn of_two_processes_only_the_leader_acts_and_the_standby_takes_over() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let make = || Deactivator {
        store: store.clone(),
        world: world.clone(),
        gate: None,
        poll_first: false,
    };
    let a = process(&db, make()).await;
    let b = process(&db, make()).await;
    let ids = register(&store, 6).await;
    eventually("first batch done", async || {
        active_count(&store, &ids).await == 0
    })
    .await;
    let leaders: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks where locktype = 'advisory' and granted
         and objid = hashtext('processor:deactivator')::oid
         and database = (select oid from pg_database where datname = current_database())",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(leaders, 1);
    a.stop().await;
    // The standby looks again within its poll interval and leads.
    let more: Vec<String> = {
        let mut v = Vec::new();
        for i in 100..104 {
            let repo = format!("org/late-{i}");
            let id = ModelId::for_repo(&repo).to_string();
            let cmd = ModelCommand::Register(RegisterModel {
                hf_repo_id: repo,
                display_name: "Late".into(),
                parameter_count: 1_000_000_000,
                required_vram_gb: 8,
                context_length: 4096,
                data_volume_gb: None,
                task: ModelTask::Generate,
                active: true,
            });
            let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
            store.execute::<Model>(&id, cmd, &(), &ctx).await.unwrap();
            v.push(id);
        }
        v
    };
    eventually("standby took over", async || {
        active_count(&store, &more).await == 0
    })
    .await;
    assert_eq!(world.lock().unwrap().creates, 10);
    b.stop().await;
}

impl Process {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// Holds the checkpoints' table locked against writes, so that writing the work list (which
/// moves the checkpoint in the same statement) waits. A table lock takes no transaction id,
/// so the events appended meanwhile are not held back behind it, as they would be behind a
/// row lock.
async fn hold_checkpoint(db: &TestDatabase) -> sqlx::Transaction<'static, sqlx::Postgres> {
    eventually("the processor leads", async || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from processor_checkpoints where name = 'deactivator'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
            == 1
    })
    .await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("lock table processor_checkpoints in exclusive mode")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

#[tokio::test]
async fn a_woken_step_starts_before_its_row_is_written_and_is_recorded_once_it_is() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let p = process(&db, deactivator(&store, &world)).await;
    let held = hold_checkpoint(&db).await;
    let ids = register(&store, 3).await;
    // The steps run and record their outcomes while the work list cannot be written.
    eventually("stepped while the rows wait", async || {
        active_count(&store, &ids).await == 0
    })
    .await;
    assert_eq!(work_rows(&db).await, 0, "no row written yet");
    held.rollback().await.unwrap();
    // The rows are written with the checkpoint, then their steps' results: the work list
    // ends empty, and no sweep repeated a step meanwhile.
    eventually("the checkpoint moved past the waking events", async || {
        sqlx::query_scalar::<_, i64>(
            "select events_seen from processor_checkpoints where name = 'deactivator'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
            >= 3
    })
    .await;
    eventually("empty work list", async || work_rows(&db).await == 0).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(work_rows(&db).await, 0);
    assert_eq!(world.lock().unwrap().steps, 3, "one step per subject");
    p.stop().await;
}

#[tokio::test]
async fn a_leader_killed_before_its_rows_are_written_leaves_the_work_to_the_next() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let world = Arc::new(Mutex::new(World::default()));
    let first = process(&db, held_after_side_effect(&store, &world)).await;
    let held = hold_checkpoint(&db).await;
    let ids = register(&store, 3).await;
    eventually("three side effects made", async || {
        world.lock().unwrap().creates == 3
    })
    .await;
    // Killed with its steps between side effect and record, and its rows not yet written.
    first.task.abort();
    let _ = first.task.await;
    held.rollback().await.unwrap();
    next_leader_finishes(&db, &store, &world, &ids).await;
}

/// Fails every step, noting the failures in a row each step was told of.
struct Failing {
    seen: Arc<Mutex<Vec<i32>>>,
}

#[async_trait::async_trait]
impl Processor for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        model_subject(event)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        self.seen.lock().unwrap().push(work.failures);
        anyhow::bail!("the provider is down")
    }
}

fn failing_runner(pool: sqlx::PgPool, seen: &Arc<Mutex<Vec<i32>>>) -> Process {
    let settings = RunnerSettings {
        poll_interval: Duration::from_millis(200),
        // Retries far apart: only events wake the subject within the test.
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(60),
        ..RunnerSettings::default()
    };
    run(pool, Arc::new(Failing { seen: seen.clone() }), settings)
}

/// A subject woken by an event while it backs off keeps its count of failed steps, under the
/// same leader and under the next one (which reads it from the work list): the count is what
/// makes a processor give up after too many provider errors.
#[tokio::test]
async fn an_event_during_backoff_keeps_the_count_of_failed_steps() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ctx = || CommandContext::new(EventMetadata::new_command(Actor::system("test")));
    let first = failing_runner(db.second_pool(5).await, &seen);
    let ids = register(&store, 1).await;
    let id = &ids[0];
    eventually("the first step failed", async || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    // Two more events, each waking the subject while it backs off.
    for (n, cmd) in [(2, ModelCommand::Deactivate), (3, ModelCommand::Activate)] {
        store.execute::<Model>(id, cmd, &(), &ctx()).await.unwrap();
        eventually("the woken step failed", async || {
            seen.lock().unwrap().len() == n
        })
        .await;
    }
    first.stop().await;
    // The next leader reads the count from the work list (the row is not due for a while).
    eventually("the count recorded", async || {
        sqlx::query_scalar::<_, i32>(
            "select failures from processor_work where processor = 'failing'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
            == 3
    })
    .await;
    let second = failing_runner(db.second_pool(5).await, &seen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .execute::<Model>(id, ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    eventually("woken under the next leader", async || {
        seen.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3]);
    second.stop().await;
}

/// A new leader never gives a generation an earlier one gave, even once the row that carried
/// it is gone: a late write of the earlier leader, guarded by its generation, must never touch
/// a row of the next.
#[tokio::test]
async fn a_generation_is_never_given_twice_across_leaders() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let generation = async || -> Option<i64> {
        sqlx::query_scalar("select generation from processor_work where processor = 'failing'")
            .fetch_optional(&db.pool)
            .await
            .unwrap()
    };
    let first = failing_runner(db.second_pool(5).await, &seen);
    let ids = register(&store, 1).await;
    eventually("the first row written", async || {
        generation().await.is_some()
    })
    .await;
    let given = generation().await.unwrap();
    first.stop().await;
    // The row leaves (as a step reporting done would have it).
    sqlx::query("delete from processor_work where processor = 'failing'")
        .execute(&db.pool)
        .await
        .unwrap();
    let second = failing_runner(db.second_pool(5).await, &seen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
    store
        .execute::<Model>(&ids[0], ModelCommand::Deactivate, &(), &ctx)
        .await
        .unwrap();
    eventually("woken under the next leader", async || {
        generation().await.is_some()
    })
    .await;
    assert!(generation().await.unwrap() > given);
    second.stop().await;
}

/// Asks to be looked at again in 600 ms after its first step; done after any other.
struct Looker {
    steps: Arc<Mutex<u32>>,
}

#[async_trait::async_trait]
impl Processor for Looker {
    fn name(&self) -> &'static str {
        "looker"
    }

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        model_subject(event)
    }

    async fn step(&self, _work: &Work) -> anyhow::Result<Next> {
        let mut steps = self.steps.lock().unwrap();
        *steps += 1;
        Ok(if *steps == 1 {
            Next::After(Duration::from_millis(600))
        } else {
            Next::Done
        })
    }
}

/// A step that finishes supersedes the look again an earlier step of its subject asked for:
/// it looked at the subject as it is now.
#[tokio::test]
async fn a_finished_step_drops_the_look_again_an_earlier_one_asked_for() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let steps = Arc::new(Mutex::new(0));
    let settings = RunnerSettings {
        poll_interval: Duration::from_millis(200),
        ..RunnerSettings::default()
    };
    let looker = Arc::new(Looker {
        steps: steps.clone(),
    });
    let p = run(db.second_pool(5).await, looker, settings);
    let ids = register(&store, 1).await;
    eventually("the first step", async || *steps.lock().unwrap() == 1).await;
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
    store
        .execute::<Model>(&ids[0], ModelCommand::Deactivate, &(), &ctx)
        .await
        .unwrap();
    eventually("the woken step", async || *steps.lock().unwrap() == 2).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        *steps.lock().unwrap(),
        2,
        "the earlier look again was dropped"
    );
    p.stop().await;
}
