use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{ModelCommand, ModelError, ModelEvent, ModelTask, decide};

/// The model aggregate: absent until registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub state: Option<ModelState>,
}

/// A registered model as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    pub hf_repo_id: String,
    pub display_name: String,
    pub parameter_count: u64,
    pub required_vram_gb: u32,
    pub context_length: u32,
    pub data_volume_gb: u32,
    pub data_volume_computed: bool,
    pub task: ModelTask,
    pub active: bool,
}

impl Aggregate for Model {
    const TYPE: &'static str = "model";
    type Command = ModelCommand;
    type Event = ModelEvent;
    type Error = ModelError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ModelEvent::ModelRegistered(e) => {
                self.state = Some(ModelState {
                    hf_repo_id: e.hf_repo_id,
                    display_name: e.display_name,
                    parameter_count: e.parameter_count,
                    required_vram_gb: e.required_vram_gb,
                    context_length: e.context_length,
                    data_volume_gb: e.data_volume_gb,
                    data_volume_computed: e.data_volume_computed,
                    task: e.task,
                    active: e.active,
                });
            }
            ModelEvent::ModelUpdated(c) => {
                if let Some(s) = self.state.as_mut() {
                    if let Some(v) = c.display_name {
                        s.display_name = v;
                    }
                    if let Some(v) = c.parameter_count {
                        s.parameter_count = v;
                    }
                    if let Some(v) = c.required_vram_gb {
                        s.required_vram_gb = v;
                    }
                    if let Some(v) = c.context_length {
                        s.context_length = v;
                    }
                    if let Some(v) = c.data_volume_gb {
                        s.data_volume_gb = v;
                    }
                    if let Some(v) = c.data_volume_computed {
                        s.data_volume_computed = v;
                    }
                    if let Some(v) = c.task {
                        s.task = v;
                    }
                }
            }
            ModelEvent::ModelActivated => {
                if let Some(s) = self.state.as_mut() {
                    s.active = true;
                }
            }
            ModelEvent::ModelDeactivated => {
                if let Some(s) = self.state.as_mut() {
                    s.active = false;
                }
            }
        }
    }
}
