use serde::{Deserialize, Serialize};

use super::ModelTask;

/// Commands of the model catalog. Numbers are signed so that a zero or negative value is a
/// domain rejection with a typed error, not a parse failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelCommand {
    Register(RegisterModel),
    Update(UpdateModel),
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterModel {
    pub hf_repo_id: String,
    pub display_name: String,
    pub parameter_count: i64,
    pub required_vram_gb: i64,
    pub context_length: i64,
    /// Computed from the parameter count when absent.
    pub data_volume_gb: Option<i64>,
    pub task: ModelTask,
    pub active: bool,
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateModel {
    pub display_name: Option<String>,
    pub parameter_count: Option<i64>,
    pub required_vram_gb: Option<i64>,
    pub context_length: Option<i64>,
    pub data_volume_gb: Option<i64>,
    pub task: Option<ModelTask>,
}
