//! Every rule of zones, the compatibility rule and the seed catalog, given/when/then, asserted
//! by error variant. Instance type rules are in `instance_type_rules.rs`.

use std::collections::{BTreeMap, HashSet};

use cqrs_es::test::TestFramework;
use inferplane_domain::catalog::seed::{seed_instance_types, seed_zones};
use inferplane_domain::catalog::{
    Availability, CatalogError, InstanceType, InstanceTypeCommand, InstanceTypeEvent,
    InstanceTypeId, InstanceTypeRegistered, InstanceTypeState, Provider, RegisterZone,
    UpdateInstanceType, UpdateZone, Zone, ZoneCommand, ZoneEvent, ZoneId, ZoneRegistered,
    decide_instance_type, decide_zone, fits,
};

type GivenZone = TestFramework<Zone>;
type GivenType = TestFramework<InstanceType>;

fn register_par2() -> RegisterZone {
    RegisterZone {
        provider: Provider::Scaleway,
        code: "fr-par-2".into(),
        display_name: "Paris 2".into(),
        active: true,
    }
}

fn par2_registered() -> ZoneEvent {
    ZoneEvent::ZoneRegistered(ZoneRegistered {
        provider: Provider::Scaleway,
        code: "fr-par-2".into(),
        display_name: "Paris 2".into(),
        active: true,
    })
}

fn l4_registered() -> InstanceTypeEvent {
    InstanceTypeEvent::InstanceTypeRegistered(InstanceTypeRegistered {
        provider: Provider::Scaleway,
        code: "L4-1-24G".into(),
        gpu_model: "L4".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        vcpus: 8,
        ram_gb: 48,
        hourly_price_micro_eur: 750_000,
        availability: BTreeMap::from([("fr-par-2".to_string(), Availability::Available)]),
        active: true,
    })
}

fn type_with(gpu_count: u32, vram_per_gpu_gb: u32) -> InstanceTypeState {
    let mut t = InstanceType::default();
    cqrs_es::Aggregate::apply(&mut t, l4_registered());
    InstanceTypeState {
        gpu_count,
        vram_per_gpu_gb,
        ..t.state.unwrap()
    }
}

#[test]
fn registering_a_zone_records_it() {
    GivenZone::with(())
        .given_no_previous_events()
        .when(ZoneCommand::Register(register_par2()))
        .then_expect_events(vec![par2_registered()]);
}

#[test]
fn registering_a_zone_twice_is_refused() {
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Register(register_par2()))
        .then_expect_error(CatalogError::ZoneAlreadyRegistered {
            code: "fr-par-2".into(),
        });
}

#[test]
fn malformed_zone_codes_are_refused() {
    for code in [
        "FR-PAR-2",
        "fr",
        "fr_par_2",
        "-fr-par",
        "fr-par-",
        "fr par 2",
        &"a".repeat(33),
    ] {
        let result = decide_zone(
            &Zone::default(),
            ZoneCommand::Register(RegisterZone {
                code: code.into(),
                ..register_par2()
            }),
        );
        assert!(
            matches!(result, Err(CatalogError::InvalidZoneCode { .. })),
            "{code:?} gave {result:?}"
        );
    }
}

#[test]
fn a_zone_needs_a_display_name() {
    GivenZone::with(())
        .given_no_previous_events()
        .when(ZoneCommand::Register(RegisterZone {
            display_name: " ".into(),
            ..register_par2()
        }))
        .then_expect_error(CatalogError::EmptyDisplayName);
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Update(UpdateZone {
            display_name: Some("x".repeat(201)),
        }))
        .then_expect_error(CatalogError::DisplayNameTooLong);
}

#[test]
fn renaming_a_zone_records_the_new_name_and_the_same_name_is_a_no_op() {
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Update(UpdateZone {
            display_name: Some("Paris DC5".into()),
        }))
        .then_expect_events(vec![ZoneEvent::ZoneRenamed {
            display_name: "Paris DC5".into(),
        }]);
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Update(UpdateZone {
            display_name: Some("Paris 2".into()),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn deactivating_then_activating_a_zone_records_both_and_repeats_are_no_ops() {
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Deactivate)
        .then_expect_events(vec![ZoneEvent::ZoneDeactivated]);
    GivenZone::with(())
        .given(vec![par2_registered(), ZoneEvent::ZoneDeactivated])
        .when(ZoneCommand::Deactivate)
        .then_expect_events(vec![]);
    GivenZone::with(())
        .given(vec![par2_registered(), ZoneEvent::ZoneDeactivated])
        .when(ZoneCommand::Activate)
        .then_expect_events(vec![ZoneEvent::ZoneActivated]);
    GivenZone::with(())
        .given(vec![par2_registered()])
        .when(ZoneCommand::Activate)
        .then_expect_events(vec![]);
}

#[test]
fn commands_on_an_unknown_zone_or_type_are_refused() {
    for cmd in [
        ZoneCommand::Activate,
        ZoneCommand::Deactivate,
        ZoneCommand::Update(UpdateZone::default()),
    ] {
        GivenZone::with(())
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(CatalogError::ZoneNotRegistered);
    }
    for cmd in [
        InstanceTypeCommand::Activate,
        InstanceTypeCommand::Deactivate,
        InstanceTypeCommand::Update(UpdateInstanceType::default()),
        InstanceTypeCommand::SetAvailability {
            zone: "fr-par-2".into(),
            availability: None,
        },
    ] {
        GivenType::with(())
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(CatalogError::TypeNotRegistered);
    }
}

#[test]
fn a_model_fits_a_type_when_total_vram_is_at_least_what_it_requires() {
    assert_eq!(type_with(2, 24).total_vram_gb(), 48);
    assert!(fits(48, &type_with(2, 24)), "2 x 24 GB holds a 48 GB model");
    assert!(!fits(48, &type_with(1, 24)), "1 x 24 GB does not");
    assert!(fits(160, &type_with(2, 80)));
    assert!(!fits(161, &type_with(2, 80)));
}

#[test]
fn the_seed_catalog_is_valid_with_distinct_ids_and_known_zones() {
    let zones = seed_zones();
    let codes: HashSet<_> = zones.iter().map(|z| z.code.clone()).collect();
    assert_eq!(codes.len(), 3);
    for z in zones {
        decide_zone(&Zone::default(), ZoneCommand::Register(z.clone())).unwrap();
        assert_eq!(
            ZoneId::new(z.provider, &z.code),
            ZoneId::new(Provider::Scaleway, &z.code)
        );
    }
    let types = seed_instance_types();
    assert_eq!(types.len(), 14);
    let ids: HashSet<_> = types
        .iter()
        .map(|t| InstanceTypeId::new(t.provider, &t.code))
        .collect();
    assert_eq!(ids.len(), types.len());
    for t in types {
        assert!(
            t.availability.keys().all(|z| codes.contains(z)),
            "{}",
            t.code
        );
        decide_instance_type(
            &InstanceType::default(),
            InstanceTypeCommand::Register(t.clone()),
        )
        .unwrap_or_else(|e| panic!("{} is invalid: {e}", t.code));
    }
}
