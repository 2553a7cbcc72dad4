use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{
    Availability, CatalogError, InstanceTypeCommand, InstanceTypeEvent, Provider, ZoneCommand,
    ZoneEvent, decide_instance_type, decide_zone,
};

/// The zone aggregate: absent until registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub state: Option<ZoneState>,
}

/// A registered zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneState {
    pub provider: Provider,
    pub code: String,
    pub display_name: String,
    pub active: bool,
}

/// The instance type aggregate: absent until registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    pub state: Option<InstanceTypeState>,
}

/// A registered instance type with its specification, price and availability per zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceTypeState {
    pub provider: Provider,
    pub code: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u32,
    pub vcpus: u32,
    pub ram_gb: u32,
    /// Integer micro-euros per hour.
    pub hourly_price_micro_eur: i64,
    /// Zone code -> availability; a zone absent here does not offer the type.
    pub availability: BTreeMap<String, Availability>,
    pub active: bool,
}

impl InstanceTypeState {
    /// VRAM of all GPUs together, what decides which models fit.
    pub fn total_vram_gb(&self) -> u32 {
        // Bounded by validation (64 GPUs x 1024 GB), so no overflow.
        self.gpu_count * self.vram_per_gpu_gb
    }
}

impl Aggregate for Zone {
    const TYPE: &'static str = "zone";
    type Command = ZoneCommand;
    type Event = ZoneEvent;
    type Error = CatalogError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide_zone(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ZoneEvent::ZoneRegistered(e) => {
                self.state = Some(ZoneState {
                    provider: e.provider,
                    code: e.code,
                    display_name: e.display_name,
                    active: e.active,
                });
            }
            ZoneEvent::ZoneRenamed { display_name } => {
                if let Some(s) = self.state.as_mut() {
                    s.display_name = display_name;
                }
            }
            ZoneEvent::ZoneActivated | ZoneEvent::ZoneDeactivated => {
                if let Some(s) = self.state.as_mut() {
                    s.active = event == ZoneEvent::ZoneActivated;
                }
            }
        }
    }
}

impl Aggregate for InstanceType {
    const TYPE: &'static str = "instance_type";
    type Command = InstanceTypeCommand;
    type Event = InstanceTypeEvent;
    type Error = CatalogError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide_instance_type(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use InstanceTypeEvent as E;
        if let E::InstanceTypeRegistered(e) = event {
            self.state = Some(InstanceTypeState {
                provider: e.provider,
                code: e.code,
                gpu_model: e.gpu_model,
                gpu_count: e.gpu_count,
                vram_per_gpu_gb: e.vram_per_gpu_gb,
                vcpus: e.vcpus,
                ram_gb: e.ram_gb,
                hourly_price_micro_eur: e.hourly_price_micro_eur,
                availability: e.availability,
                active: e.active,
            });
            return;
        }
        let Some(s) = self.state.as_mut() else {
            return;
        };
        match event {
            E::InstanceTypeRegistered(_) => {}
            E::InstanceTypeUpdated(c) => {
                if let Some(v) = c.gpu_model {
                    s.gpu_model = v;
                }
                s.gpu_count = c.gpu_count.unwrap_or(s.gpu_count);
                s.vram_per_gpu_gb = c.vram_per_gpu_gb.unwrap_or(s.vram_per_gpu_gb);
                s.vcpus = c.vcpus.unwrap_or(s.vcpus);
                s.ram_gb = c.ram_gb.unwrap_or(s.ram_gb);
                s.hourly_price_micro_eur =
                    c.hourly_price_micro_eur.unwrap_or(s.hourly_price_micro_eur);
            }
            E::InstanceTypeAvailabilitySet { zone, availability } => {
                s.availability.insert(zone, availability);
            }
            E::InstanceTypeAvailabilityCleared { zone } => {
                s.availability.remove(&zone);
            }
            E::InstanceTypeActivated => s.active = true,
            E::InstanceTypeDeactivated => s.active = false,
        }
    }
}
