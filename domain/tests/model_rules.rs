//! Every rule of the model catalog, given/when/then, asserted by error variant.

use cqrs_es::test::TestFramework;
use inferplane_domain::model::{
    Model, ModelChanges, ModelCommand, ModelError, ModelEvent, ModelId, ModelRegistered, ModelTask,
    RegisterModel, UpdateModel, decide, seed::seed_catalog,
};

type Given = TestFramework<Model>;

fn register_llama() -> RegisterModel {
    RegisterModel {
        hf_repo_id: "meta-llama/Llama-3.1-8B-Instruct".into(),
        display_name: "Llama 3.1 8B".into(),
        parameter_count: 8_030_000_000,
        required_vram_gb: 24,
        context_length: 131_072,
        data_volume_gb: None,
        task: ModelTask::Generate,
        active: true,
    }
}

fn llama_registered() -> ModelEvent {
    ModelEvent::ModelRegistered(ModelRegistered {
        hf_repo_id: "meta-llama/Llama-3.1-8B-Instruct".into(),
        display_name: "Llama 3.1 8B".into(),
        parameter_count: 8_030_000_000,
        required_vram_gb: 24,
        context_length: 131_072,
        data_volume_gb: 100,
        data_volume_computed: true,
        task: ModelTask::Generate,
        active: true,
    })
}

#[test]
fn registering_a_model_computes_its_data_volume_from_its_size() {
    Given::with(())
        .given_no_previous_events()
        .when(ModelCommand::Register(register_llama()))
        .then_expect_events(vec![llama_registered()]);
}

#[test]
fn an_explicit_data_volume_is_kept_as_given() {
    let cmd = RegisterModel {
        data_volume_gb: Some(250),
        ..register_llama()
    };
    let events = decide(&Model::default(), ModelCommand::Register(cmd)).unwrap();
    let ModelEvent::ModelRegistered(e) = &events[0] else {
        panic!("expected ModelRegistered, got {events:?}")
    };
    assert_eq!((e.data_volume_gb, e.data_volume_computed), (250, false));
}

#[test]
fn registering_the_same_repository_twice_is_refused() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Register(register_llama()))
        .then_expect_error(ModelError::AlreadyRegistered {
            hf_repo_id: "meta-llama/Llama-3.1-8B-Instruct".into(),
        });
}

#[test]
fn the_same_repository_in_another_case_maps_to_the_same_model() {
    assert_eq!(
        ModelId::for_repo("meta-llama/Llama-3.1-8B-Instruct"),
        ModelId::for_repo(" META-LLAMA/llama-3.1-8b-instruct ")
    );
}

#[test]
fn zero_or_negative_vram_is_refused() {
    for value in [0, -8] {
        Given::with(())
            .given_no_previous_events()
            .when(ModelCommand::Register(RegisterModel {
                required_vram_gb: value,
                ..register_llama()
            }))
            .then_expect_error(ModelError::NonPositiveVram { value });
    }
}

#[test]
fn out_of_range_numbers_are_refused_with_their_own_error() {
    let cases = [
        (
            RegisterModel {
                parameter_count: 0,
                ..register_llama()
            },
            ModelError::NonPositiveParameterCount { value: 0 },
        ),
        (
            RegisterModel {
                context_length: -1,
                ..register_llama()
            },
            ModelError::NonPositiveContextLength { value: -1 },
        ),
        (
            RegisterModel {
                context_length: 1 << 40,
                ..register_llama()
            },
            ModelError::ContextLengthTooLarge { value: 1 << 40 },
        ),
        (
            RegisterModel {
                required_vram_gb: 1 << 40,
                ..register_llama()
            },
            ModelError::VramTooLarge { value: 1 << 40 },
        ),
        (
            RegisterModel {
                data_volume_gb: Some(5),
                ..register_llama()
            },
            ModelError::DataVolumeOutOfRange { value: 5 },
        ),
        (
            RegisterModel {
                display_name: "  ".into(),
                ..register_llama()
            },
            ModelError::EmptyDisplayName,
        ),
        (
            RegisterModel {
                display_name: "x".repeat(201),
                ..register_llama()
            },
            ModelError::DisplayNameTooLong,
        ),
    ];
    for (cmd, error) in cases {
        assert_eq!(
            decide(&Model::default(), ModelCommand::Register(cmd)),
            Err(error)
        );
    }
}

#[test]
fn malformed_repository_ids_are_refused() {
    for repo in ["llama", "a/b/c", "/x", "meta llama/x", "-a/b", "a/b.", ""] {
        let result = decide(
            &Model::default(),
            ModelCommand::Register(RegisterModel {
                hf_repo_id: repo.into(),
                ..register_llama()
            }),
        );
        assert!(
            matches!(result, Err(ModelError::InvalidRepoId { .. })),
            "{repo:?} gave {result:?}"
        );
    }
}

#[test]
fn commands_on_an_unknown_model_are_refused() {
    for cmd in [
        ModelCommand::Activate,
        ModelCommand::Deactivate,
        ModelCommand::Update(UpdateModel::default()),
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ModelError::NotRegistered);
    }
}

#[test]
fn deactivating_then_activating_records_both_and_repeats_are_no_ops() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Deactivate)
        .then_expect_events(vec![ModelEvent::ModelDeactivated]);
    Given::with(())
        .given(vec![llama_registered(), ModelEvent::ModelDeactivated])
        .when(ModelCommand::Deactivate)
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![llama_registered(), ModelEvent::ModelDeactivated])
        .when(ModelCommand::Activate)
        .then_expect_events(vec![ModelEvent::ModelActivated]);
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Activate)
        .then_expect_events(vec![]);
}

#[test]
fn an_update_records_only_what_changed() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Update(UpdateModel {
            display_name: Some("Llama 3.1 8B".into()),
            context_length: Some(8192),
            ..UpdateModel::default()
        }))
        .then_expect_events(vec![ModelEvent::ModelUpdated(ModelChanges {
            context_length: Some(8192),
            ..ModelChanges::default()
        })]);
}

#[test]
fn an_update_with_current_values_records_nothing() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Update(UpdateModel {
            required_vram_gb: Some(24),
            ..UpdateModel::default()
        }))
        .then_expect_events(vec![]);
}

#[test]
fn a_computed_volume_follows_a_new_parameter_count() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Update(UpdateModel {
            parameter_count: Some(70_000_000_000),
            ..UpdateModel::default()
        }))
        .then_expect_events(vec![ModelEvent::ModelUpdated(ModelChanges {
            parameter_count: Some(70_000_000_000),
            data_volume_gb: Some(450),
            ..ModelChanges::default()
        })]);
}

#[test]
fn an_explicit_volume_pins_it_against_later_size_changes() {
    let pinned = ModelEvent::ModelUpdated(ModelChanges {
        data_volume_gb: Some(300),
        data_volume_computed: Some(false),
        ..ModelChanges::default()
    });
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Update(UpdateModel {
            data_volume_gb: Some(300),
            ..UpdateModel::default()
        }))
        .then_expect_events(vec![pinned.clone()]);
    Given::with(())
        .given(vec![llama_registered(), pinned])
        .when(ModelCommand::Update(UpdateModel {
            parameter_count: Some(70_000_000_000),
            ..UpdateModel::default()
        }))
        .then_expect_events(vec![ModelEvent::ModelUpdated(ModelChanges {
            parameter_count: Some(70_000_000_000),
            ..ModelChanges::default()
        })]);
}

#[test]
fn an_invalid_update_is_refused_whole() {
    Given::with(())
        .given(vec![llama_registered()])
        .when(ModelCommand::Update(UpdateModel {
            display_name: Some("New name".into()),
            required_vram_gb: Some(0),
            ..UpdateModel::default()
        }))
        .then_expect_error(ModelError::NonPositiveVram { value: 0 });
}

#[test]
fn the_seed_catalog_is_valid_and_has_distinct_models() {
    let seeds = seed_catalog();
    assert!(seeds.len() >= 15);
    let mut ids: Vec<_> = seeds
        .iter()
        .map(|s| ModelId::for_repo(&s.hf_repo_id))
        .collect();
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    assert_eq!(ids.len(), seeds.len());
    assert!(seeds.iter().any(|s| s.task == ModelTask::Embed));
    for cmd in seeds {
        decide(&Model::default(), ModelCommand::Register(cmd.clone()))
            .unwrap_or_else(|e| panic!("{} is invalid: {e}", cmd.hf_repo_id));
    }
}
