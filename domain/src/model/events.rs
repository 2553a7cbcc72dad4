use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::ModelTask;

/// Facts of the model catalog, named in the past tense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelEvent {
    ModelRegistered(ModelRegistered),
    ModelUpdated(ModelChanges),
    ModelActivated,
    ModelDeactivated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRegistered {
    pub hf_repo_id: String,
    pub display_name: String,
    pub parameter_count: u64,
    pub required_vram_gb: u32,
    pub context_length: u32,
    pub data_volume_gb: u32,
    /// True when `data_volume_gb` came from the sizing table rather than the operator; such a
    /// volume follows later changes of the parameter count.
    pub data_volume_computed: bool,
    pub task: ModelTask,
    pub active: bool,
}

/// The fields an update changed, with their new values; unchanged fields are absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_vram_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_computed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<ModelTask>,
}

impl ModelChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl DomainEvent for ModelEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ModelRegistered(_) => "ModelRegistered",
            Self::ModelUpdated(_) => "ModelUpdated",
            Self::ModelActivated => "ModelActivated",
            Self::ModelDeactivated => "ModelDeactivated",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
