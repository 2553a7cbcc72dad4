//! The event store's guarantees: append-only history, optimistic concurrency, idempotent
//! commands, one wake-up per append transaction, and postgres-es compatibility.

use std::time::Duration;

use cqrs_es::persist::PersistedEventRepository;
use inferplane_domain::model::{
    Model, ModelCommand, ModelError, ModelId, ModelTask, RegisterModel,
};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{
    CommandContext, CommandError, EventStore, Idempotency, NOTIFY_CHANNEL, NewEvent, Notifier,
};

fn register(repo: &str) -> ModelCommand {
    ModelCommand::Register(RegisterModel {
        hf_repo_id: repo.into(),
        display_name: "Test model".into(),
        parameter_count: 7_000_000_000,
        required_vram_gb: 24,
        context_length: 8192,
        data_volume_gb: None,
        task: ModelTask::Generate,
        active: true,
    })
}

fn ctx() -> CommandContext {
    CommandContext::new(EventMetadata::new_command(Actor::operator("admin")))
}

fn with_key(key: &str, fingerprint: &str) -> CommandContext {
    CommandContext {
        idempotency: Some(Idempotency {
            key: key.into(),
            fingerprint: fingerprint.into(),
        }),
        ..ctx()
    }
}

async fn event_count(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("select count(*) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn model_id(repo: &str) -> String {
    ModelId::for_repo(repo).to_string()
}

/// A fresh database whose store holds one registered model: the database, the store, and the
/// model's id.
async fn one_model(repo: &str) -> (TestDatabase, EventStore, String) {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let id = model_id(repo);
    store
        .execute::<Model>(&id, register(repo), &(), &ctx())
        .await
        .unwrap();
    (db, store, id)
}

#[tokio::test]
async fn the_database_refuses_to_update_delete_or_truncate_events() {
    let (db, ..) = one_model("org/model").await;
    for statement in [
        "update events set payload = '{}'",
        "delete from events",
        "truncate events",
    ] {
        let err = sqlx::query(statement).execute(&db.pool).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    assert_eq!(event_count(&db).await, 1);
}

#[tokio::test]
async fn every_event_carries_its_metadata() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let mut context = ctx();
    context.metadata.request_id = Some("req-42".into());
    let id = model_id("org/model");
    store
        .execute::<Model>(&id, register("org/model"), &(), &context)
        .await
        .unwrap();
    let metadata: serde_json::Value = sqlx::query_scalar("select metadata from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let stored: EventMetadata = serde_json::from_value(metadata).unwrap();
    assert_eq!(stored, context.metadata);
    assert_eq!(stored.tenant_id, inferplane_domain::DEFAULT_TENANT);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_appends_nothing() {
    let (db, store, id) = one_model("org/model").await;
    let stale = CommandContext {
        expected_version: Some(0),
        ..ctx()
    };
    let err = store
        .execute::<Model>(&id, ModelCommand::Deactivate, &(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(event_count(&db).await, 1);
}

#[tokio::test]
async fn a_command_decided_on_a_stale_state_is_decided_again_on_the_current_one() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let id = model_id("org/stale");

    // Refused on the stale state (not registered yet), accepted on the current one.
    let before = store.load::<Model>(&id, None).await.unwrap();
    store
        .execute::<Model>(&id, register("org/stale"), &(), &ctx())
        .await
        .unwrap();
    let out = store
        .execute_on::<Model>(&id, before, ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    assert_eq!((out.version, out.events.len()), (2, 1));

    // A no-op on the stale state (inactive), a change on the current one (active again).
    let inactive = store.load::<Model>(&id, None).await.unwrap();
    store
        .execute::<Model>(&id, ModelCommand::Activate, &(), &ctx())
        .await
        .unwrap();
    let out = store
        .execute_on::<Model>(&id, inactive.clone(), ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    assert_eq!((out.version, out.events.len()), (4, 1));
    assert!(!out.aggregate.state.unwrap().active);

    // Accepted on the stale state, but the append conflicts: decided again, nothing doubled.
    store
        .execute::<Model>(&id, ModelCommand::Activate, &(), &ctx())
        .await
        .unwrap();
    let out = store
        .execute_on::<Model>(&id, inactive, ModelCommand::Activate, &(), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (out.version, out.events.len()),
        (5, 0),
        "already active: a no-op"
    );
    assert_eq!(event_count(&db).await, 5);

    // On a current state it appends without loading again.
    let current = store.load::<Model>(&id, None).await.unwrap();
    let out = store
        .execute_on::<Model>(&id, current.clone(), ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    assert_eq!((out.version, out.events.len()), (6, 1));

    // Proof that the held state, not a load, decided: a held state at the store's version
    // that says "inactive" while the store says "active" makes Activate append (a load would
    // have found it active already, a no-op).
    store
        .execute::<Model>(&id, ModelCommand::Activate, &(), &ctx())
        .await
        .unwrap();
    let mut held = store.load::<Model>(&id, None).await.unwrap();
    assert!(held.aggregate.state.as_ref().unwrap().active);
    held.aggregate.state.as_mut().unwrap().active = false;
    let out = store
        .execute_on::<Model>(&id, held, ModelCommand::Activate, &(), &ctx())
        .await
        .unwrap();
    assert_eq!((out.version, out.events.len()), (8, 1));
}

/// Reading on from an earlier load applies exactly the events that came since: the result is
/// the full load's, and the held copy is built on, not reread (a copy doctored the way no
/// event could have made it keeps its mark, which a full load would lose).
#[tokio::test]
async fn reading_on_from_an_earlier_load_gives_what_a_full_load_gives() {
    let (_db, store, id) = one_model("org/read-on").await;
    let earlier = store.load::<Model>(&id, None).await.unwrap();

    // Nothing new: the copy as it was.
    let same = store.load_on::<Model>(&id, earlier.clone()).await.unwrap();
    assert_eq!(same.version, 1);
    assert_eq!(same.aggregate.state, earlier.aggregate.state);

    // Three events by another writer since.
    for command in [
        ModelCommand::Deactivate,
        ModelCommand::Activate,
        ModelCommand::Deactivate,
    ] {
        store
            .execute::<Model>(&id, command, &(), &ctx())
            .await
            .unwrap();
    }
    let full = store.load::<Model>(&id, None).await.unwrap();
    let on = store.load_on::<Model>(&id, earlier.clone()).await.unwrap();
    assert_eq!(on.version, 4);
    assert_eq!(on.aggregate.state, full.aggregate.state);
    assert_eq!(
        (on.created_at, on.updated_at),
        (full.created_at, full.updated_at)
    );

    let mut doctored = earlier;
    doctored.aggregate.state.as_mut().unwrap().display_name = "held copy".into();
    let on = store.load_on::<Model>(&id, doctored).await.unwrap();
    let state = on.aggregate.state.unwrap();
    assert_eq!(state.display_name, "held copy");
    assert!(!state.active, "the three later events applied on top");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_repository_append_exactly_once() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let id = model_id("org/model");
    let attempts = (0..8).map(|_| {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            store
                .execute::<Model>(&id, register("org/model"), &(), &ctx())
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(Err(CommandError::Conflict { .. }))
                    | Ok(Err(CommandError::Rejected(
                        ModelError::AlreadyRegistered { .. }
                    )))
            )
        })
        .count();
    assert_eq!((ok, refused), (1, 7));
    assert_eq!(event_count(&db).await, 1);
}

#[tokio::test]
async fn a_retried_command_with_the_same_key_returns_the_first_result() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let id = model_id("org/model");
    let first = store
        .execute::<Model>(&id, register("org/model"), &(), &with_key("k1", "f"))
        .await
        .unwrap();
    // Something else changes the model meanwhile; the retry still answers as the first did.
    store
        .execute::<Model>(&id, ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    let retry = store
        .execute::<Model>(&id, register("org/model"), &(), &with_key("k1", "f"))
        .await
        .unwrap();
    assert!(retry.replayed && !first.replayed);
    assert_eq!(retry.version, 1);
    assert_eq!(retry.aggregate, first.aggregate);
    assert_eq!(event_count(&db).await, 2);
}

#[tokio::test]
async fn reusing_a_key_for_another_request_is_refused() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    store
        .execute::<Model>(
            &model_id("org/model"),
            register("org/model"),
            &(),
            &with_key("k1", "f1"),
        )
        .await
        .unwrap();
    let err = store
        .execute::<Model>(
            &model_id("org/other"),
            register("org/other"),
            &(),
            &with_key("k1", "f2"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::IdempotencyKeyReused), "{err:?}");
    assert_eq!(event_count(&db).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_append_once_and_all_succeed() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let id = model_id("org/model");
    let attempts = (0..6).map(|_| {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            store
                .execute::<Model>(&id, register("org/model"), &(), &with_key("same", "f"))
                .await
        })
    });
    for r in futures::future::join_all(attempts).await {
        let outcome = r.unwrap().unwrap();
        assert_eq!(outcome.version, 1);
    }
    assert_eq!(event_count(&db).await, 1);
}

#[tokio::test]
async fn one_append_transaction_sends_one_small_notification() {
    let db = TestDatabase::new().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let store = EventStore::new(db.pool.clone());
    let events: Vec<_> = (0..50)
        .map(|_| NewEvent {
            event_type: "Tested".into(),
            event_version: "1".into(),
            payload: serde_json::json!({"detail": "never in a notification"}),
        })
        .collect();
    store
        .append(
            "test",
            "a",
            0,
            &events,
            &EventMetadata::new_command(Actor::system("t")),
        )
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "");
    let second = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(
        second.is_err(),
        "a second notification arrived for the same transaction"
    );
}

#[tokio::test]
async fn the_notifier_wakes_readers_on_append() {
    let db = TestDatabase::new().await;
    let notifier = Notifier::spawn(db.pool.clone());
    let mut wake = notifier.subscribe();
    // The first wake-up is the catch-up after LISTEN took effect.
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .unwrap()
        .unwrap();
    wake.borrow_and_update();
    let store = EventStore::new(db.pool.clone());
    store
        .execute::<Model>(&model_id("org/model"), register("org/model"), &(), &ctx())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn postgres_es_reads_our_events() {
    let (db, store, id) = one_model("org/model").await;
    store
        .execute::<Model>(&id, ModelCommand::Deactivate, &(), &ctx())
        .await
        .unwrap();
    let repo = postgres_es::PostgresEventRepository::new(db.pool.clone());
    let events = repo.get_events::<Model>(&id).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["ModelRegistered", "ModelDeactivated"]);
}
