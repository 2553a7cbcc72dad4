//! Every rule of instance types, given/when/then, asserted by error variant.

use std::collections::BTreeMap;

use cqrs_es::test::TestFramework;
use inferplane_domain::catalog::{
    Availability, CatalogError, InstanceType, InstanceTypeChanges, InstanceTypeCommand,
    InstanceTypeEvent, InstanceTypeId, InstanceTypeRegistered, Provider, RegisterInstanceType,
    UpdateInstanceType, decide_instance_type,
};

type GivenType = TestFramework<InstanceType>;

fn register_l4() -> RegisterInstanceType {
    RegisterInstanceType {
        provider: Provider::Scaleway,
        code: "l4-1-24g".into(),
        gpu_model: "L4".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        vcpus: 8,
        ram_gb: 48,
        hourly_price_micro_eur: 750_000,
        availability: BTreeMap::from([("fr-par-2".to_string(), Availability::Available)]),
        active: true,
    }
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

#[test]
fn registering_a_type_upper_cases_its_code() {
    GivenType::with(())
        .given_no_previous_events()
        .when(InstanceTypeCommand::Register(register_l4()))
        .then_expect_events(vec![l4_registered()]);
    assert_eq!(
        InstanceTypeId::new(Provider::Scaleway, "l4-1-24g"),
        InstanceTypeId::new(Provider::Scaleway, " L4-1-24G ")
    );
}

#[test]
fn registering_a_type_twice_is_refused() {
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Register(register_l4()))
        .then_expect_error(CatalogError::TypeAlreadyRegistered {
            code: "L4-1-24G".into(),
        });
}

#[test]
fn out_of_range_specifications_and_prices_are_refused_with_their_own_error() {
    let r = register_l4;
    let cases = [
        (
            RegisterInstanceType {
                gpu_count: 0,
                ..r()
            },
            CatalogError::GpuCountOutOfRange { value: 0 },
        ),
        (
            RegisterInstanceType {
                gpu_count: 65,
                ..r()
            },
            CatalogError::GpuCountOutOfRange { value: 65 },
        ),
        (
            RegisterInstanceType {
                vram_per_gpu_gb: -24,
                ..r()
            },
            CatalogError::VramOutOfRange { value: -24 },
        ),
        (
            RegisterInstanceType { vcpus: 0, ..r() },
            CatalogError::VcpusOutOfRange { value: 0 },
        ),
        (
            RegisterInstanceType {
                ram_gb: 1 << 40,
                ..r()
            },
            CatalogError::RamOutOfRange { value: 1 << 40 },
        ),
        (
            RegisterInstanceType {
                hourly_price_micro_eur: 0,
                ..r()
            },
            CatalogError::PriceOutOfRange { value: 0 },
        ),
        (
            RegisterInstanceType {
                hourly_price_micro_eur: -750_000,
                ..r()
            },
            CatalogError::PriceOutOfRange { value: -750_000 },
        ),
        (
            RegisterInstanceType {
                gpu_model: "".into(),
                ..r()
            },
            CatalogError::InvalidGpuModel,
        ),
        (
            RegisterInstanceType {
                code: "L4_1".into(),
                ..r()
            },
            CatalogError::InvalidTypeCode {
                value: "L4_1".into(),
            },
        ),
        (
            RegisterInstanceType {
                availability: BTreeMap::from([("Paris!".to_string(), Availability::Scarce)]),
                ..r()
            },
            CatalogError::InvalidZoneCode {
                value: "Paris!".into(),
            },
        ),
    ];
    for (cmd, error) in cases {
        assert_eq!(
            decide_instance_type(&InstanceType::default(), InstanceTypeCommand::Register(cmd)),
            Err(error)
        );
    }
}

#[test]
fn an_update_records_only_what_changed_and_is_refused_whole_if_invalid() {
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Update(UpdateInstanceType {
            hourly_price_micro_eur: Some(800_000),
            vcpus: Some(8),
            ..UpdateInstanceType::default()
        }))
        .then_expect_events(vec![InstanceTypeEvent::InstanceTypeUpdated(
            InstanceTypeChanges {
                hourly_price_micro_eur: Some(800_000),
                ..InstanceTypeChanges::default()
            },
        )]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Update(UpdateInstanceType {
            ram_gb: Some(48),
            ..UpdateInstanceType::default()
        }))
        .then_expect_events(vec![]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Update(UpdateInstanceType {
            hourly_price_micro_eur: Some(900_000),
            gpu_count: Some(0),
            ..UpdateInstanceType::default()
        }))
        .then_expect_error(CatalogError::GpuCountOutOfRange { value: 0 });
}

#[test]
fn availability_is_set_changed_cleared_and_repeats_are_no_ops() {
    let set = |zone: &str, a: Option<Availability>| InstanceTypeCommand::SetAvailability {
        zone: zone.into(),
        availability: a,
    };
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(set("nl-ams-1", Some(Availability::Scarce)))
        .then_expect_events(vec![InstanceTypeEvent::InstanceTypeAvailabilitySet {
            zone: "nl-ams-1".into(),
            availability: Availability::Scarce,
        }]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(set("fr-par-2", Some(Availability::Available)))
        .then_expect_events(vec![]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(set("fr-par-2", None))
        .then_expect_events(vec![InstanceTypeEvent::InstanceTypeAvailabilityCleared {
            zone: "fr-par-2".into(),
        }]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(set("nl-ams-1", None))
        .then_expect_events(vec![]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(set("NL-AMS-1", Some(Availability::Shortage)))
        .then_expect_error(CatalogError::InvalidZoneCode {
            value: "NL-AMS-1".into(),
        });
}

#[test]
fn deactivating_then_activating_a_type_records_both_and_repeats_are_no_ops() {
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Deactivate)
        .then_expect_events(vec![InstanceTypeEvent::InstanceTypeDeactivated]);
    GivenType::with(())
        .given(vec![
            l4_registered(),
            InstanceTypeEvent::InstanceTypeDeactivated,
        ])
        .when(InstanceTypeCommand::Activate)
        .then_expect_events(vec![InstanceTypeEvent::InstanceTypeActivated]);
    GivenType::with(())
        .given(vec![l4_registered()])
        .when(InstanceTypeCommand::Activate)
        .then_expect_events(vec![]);
}
