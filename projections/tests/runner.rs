//! The projection runner: one leader per projection across processes, exactly-once effect,
//! catch-up after a lost connection, and rebuilds while the live read model keeps serving.

use std::sync::Arc;
use std::time::Duration;

use inferplane_domain::model::{
    Model, ModelCommand, ModelId, ModelTask, RegisterModel, UpdateModel,
};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_projections::models::{self, ModelCatalog, ModelQuery};
use inferplane_projections::{Projection, ProjectionRunner, RebuildProgress};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{CommandContext, EventStore, Notifier};
use sqlx::PgPool;
use tokio::sync::watch;

struct Process {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _notifier: Notifier,
}

/// A runner with its own pool and LISTEN connection, as a separate `serve` would have.
async fn process(db: &TestDatabase, poll: Duration) -> Process {
    let pool = db.second_pool(5).await;
    let notifier = Notifier::spawn(pool.clone());
    let runner = ProjectionRunner {
        projection: Arc::new(ModelCatalog),
        pool,
        wakeups: notifier.subscribe(),
        poll_interval: poll,
        batch_size: 7,
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    Process {
        stop,
        task,
        _notifier: notifier,
    }
}

impl Process {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

async fn register(store: &EventStore, n: usize, prefix: &str) {
    for i in 0..n {
        let repo = format!("org/{prefix}-{i}");
        let cmd = ModelCommand::Register(RegisterModel {
            hf_repo_id: repo.clone(),
            display_name: format!("Model {i}"),
            parameter_count: 1_000_000_000 * (i as i64 + 1),
            required_vram_gb: 8,
            context_length: 4096,
            data_volume_gb: None,
            task: ModelTask::Generate,
            active: true,
        });
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
        store
            .execute::<Model>(&ModelId::for_repo(&repo).to_string(), cmd, &(), &ctx)
            .await
            .unwrap();
    }
}

async fn checkpoint(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "select position, events_applied from projection_checkpoints where name = 'model_catalog'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_caught_up(pool: &PgPool) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let total: i64 = sqlx::query_scalar("select count(*) from events")
            .fetch_one(pool)
            .await
            .unwrap();
        let applied = sqlx::query_scalar::<_, i64>(
            "select events_applied from projection_checkpoints where name = 'model_catalog'",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if applied == Some(total) {
            return total;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projection did not catch up: {applied:?}/{total}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_apply_each_event_exactly_once_and_the_standby_takes_over() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let first = process(&db, Duration::from_millis(200)).await;
    let second = process(&db, Duration::from_millis(200)).await;

    register(&store, 30, "a").await;
    let total = wait_caught_up(&db.pool).await;
    assert_eq!(
        checkpoint(&db.pool).await.1,
        total,
        "every event applied once"
    );
    let rows = models::list(&db.pool, &ModelQuery::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 30);

    // Whichever led, stopping both one after the other must leave no event behind.
    first.stop().await;
    register(&store, 10, "b").await;
    let total = wait_caught_up(&db.pool).await;
    assert_eq!(checkpoint(&db.pool).await.1, total);
    second.stop().await;

    let third = process(&db, Duration::from_millis(200)).await;
    register(&store, 5, "c").await;
    let total = wait_caught_up(&db.pool).await;
    assert_eq!(total, 45);
    assert_eq!(
        models::list(&db.pool, &ModelQuery::default())
            .await
            .unwrap()
            .len(),
        45
    );
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_listen_connection_is_lost_the_runner_catches_up_without_polling() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    // A poll interval far longer than the test: only wake-ups can move the projection.
    let p = process(&db, Duration::from_secs(3600)).await;
    register(&store, 3, "a").await;
    wait_caught_up(&db.pool).await;

    let killed: i64 = sqlx::query_scalar(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the LISTEN connection was found");
    register(&store, 3, "b").await;
    assert_eq!(wait_caught_up(&db.pool).await, 6);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_swaps_in_an_identical_read_model_while_the_live_runner_keeps_going() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let live = process(&db, Duration::from_millis(100)).await;
    register(&store, 40, "a").await;
    // Updates too, so the rebuild has to fold several events per model.
    for i in 0..40 {
        let repo = format!("org/a-{i}");
        let cmd = ModelCommand::Update(UpdateModel {
            display_name: Some(format!("Renamed {i}")),
            ..UpdateModel::default()
        });
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("test")));
        store
            .execute::<Model>(&ModelId::for_repo(&repo).to_string(), cmd, &(), &ctx)
            .await
            .unwrap();
    }
    wait_caught_up(&db.pool).await;
    let before = models::list(&db.pool, &ModelQuery::default())
        .await
        .unwrap();

    // Keep appending during the rebuild.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { register(&store, 20, "during").await })
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let report = |p: RebuildProgress| seen.lock().unwrap().push(p.applied);
    let applied = inferplane_projections::rebuild(&db.pool, &ModelCatalog, 9, &report)
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(applied >= 80);
    assert!(seen.lock().unwrap().len() > 2, "progress was reported");

    let total = wait_caught_up(&db.pool).await;
    assert_eq!(total, 100);
    let after = models::list(&db.pool, &ModelQuery::default())
        .await
        .unwrap();
    assert_eq!(after.len(), 60);
    for m in &before {
        assert!(
            after.contains(m),
            "{} changed in the rebuild",
            m.model.hf_repo_id
        );
    }
    let status = inferplane_projections::status(&db.pool).await.unwrap();
    assert_eq!(status[0].lag_events, 0);
    assert_eq!(status[0].version, ModelCatalog.version());
    live.stop().await;
}

#[tokio::test]
async fn status_reports_lag_in_events_and_seconds() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    inferplane_projections::ensure_installed(&db.pool, &ModelCatalog)
        .await
        .unwrap();
    register(&store, 4, "a").await;
    let status = inferplane_projections::status(&db.pool).await.unwrap();
    assert_eq!(status[0].name, "model_catalog");
    assert_eq!(status[0].lag_events, 4);
    assert!(status[0].lag_seconds >= 0.0);
    assert_eq!(status[0].code_version, Some(1));
}

/// The model catalog as an older binary would run it.
struct OlderCatalog;

#[async_trait::async_trait]
impl Projection for OlderCatalog {
    fn name(&self) -> &'static str {
        ModelCatalog.name()
    }

    fn version(&self) -> i32 {
        ModelCatalog.version() - 1
    }

    fn schema(&self) -> &'static str {
        ModelCatalog.schema()
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        ModelCatalog.aggregate_types()
    }

    async fn apply(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[inferplane_store::StoredEvent],
    ) -> anyhow::Result<()> {
        ModelCatalog.apply(conn, events).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_binary_neither_rebuilds_nor_writes_a_newer_read_model() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    inferplane_projections::ensure_installed(&db.pool, &ModelCatalog)
        .await
        .unwrap();
    register(&store, 3, "a").await;

    let pool = db.second_pool(5).await;
    let notifier = Notifier::spawn(pool.clone());
    let older = ProjectionRunner {
        projection: Arc::new(OlderCatalog),
        pool,
        wakeups: notifier.subscribe(),
        poll_interval: Duration::from_millis(50),
        batch_size: 10,
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(older.run(stopped));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = inferplane_projections::status(&db.pool).await.unwrap();
    assert_eq!(
        status[0].version,
        ModelCatalog.version(),
        "not rebuilt back"
    );
    assert_eq!(
        status[0].events_applied, 0,
        "nothing applied by the older binary"
    );
    stop.send(true).unwrap();
    task.await.unwrap();

    // The current binary leads it as usual.
    let current = process(&db, Duration::from_millis(100)).await;
    assert_eq!(wait_caught_up(&db.pool).await, 3);
    current.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_held_back_by_an_older_transaction_is_applied_once_that_transaction_ends() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    // Only wake-ups and the held-back retry can move the projection in this test.
    let p = process(&db, Duration::from_secs(3600)).await;
    register(&store, 1, "a").await;
    wait_caught_up(&db.pool).await;

    // An older transaction with an id (it wrote nothing to the events table) holds the
    // horizon: the next event commits and notifies, but cannot be read yet.
    let mut older = db.pool.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .unwrap();
    register(&store, 1, "b").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        checkpoint(&db.pool).await.1,
        1,
        "held back behind the open transaction"
    );

    // Its commit sends no notification; the runner must still get there.
    older.commit().await.unwrap();
    assert_eq!(wait_caught_up(&db.pool).await, 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_the_projection_does_not_read_still_move_its_checkpoint_to_the_head() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let runner = process(&db, Duration::from_secs(30)).await;
    register(&store, 3, "a").await;
    wait_caught_up(&db.pool).await;

    // 40 appends of another aggregate type: nothing to project, so no transaction; the
    // checkpoint still reaches the head once the runner is idle (events_applied counts every
    // event read).
    for i in 0..40 {
        store
            .append(
                "elsewhere",
                &format!("x{i}"),
                0,
                &[inferplane_store::NewEvent {
                    event_type: "Happened".into(),
                    event_version: "1".into(),
                    payload: serde_json::json!({}),
                }],
                &EventMetadata::new_command(Actor::system("test")),
            )
            .await
            .unwrap();
    }
    let total = wait_caught_up(&db.pool).await;
    assert_eq!(total, 43);
    let (position, applied) = checkpoint(&db.pool).await;
    let head: i64 = sqlx::query_scalar("select max(position) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((position, applied), (head, 43));
    // A model after them is projected as usual.
    register(&store, 1, "b").await;
    assert_eq!(wait_caught_up(&db.pool).await, 44);
    assert_eq!(
        models::list(&db.pool, &ModelQuery::default())
            .await
            .unwrap()
            .len(),
        4
    );
    runner.stop().await;
}
