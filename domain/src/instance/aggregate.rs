use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{InstanceCommand, InstanceError, InstanceEvent, InstanceState, InstanceStatus, decide};

/// The instance aggregate: absent until requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub state: Option<InstanceState>,
}

impl Instance {
    /// The current status, `None` while not requested.
    pub fn status(&self) -> Option<InstanceStatus> {
        self.state.as_ref().map(|s| s.status)
    }
}

/// The instance as it stood after `events`, in order: the auditor's "state at a point in
/// time" replays the events up to that point through this.
pub fn state_after(events: impl IntoIterator<Item = InstanceEvent>) -> Instance {
    let mut instance = Instance::default();
    for event in events {
        instance.apply(event);
    }
    instance
}

impl Aggregate for Instance {
    const TYPE: &'static str = "instance";
    type Command = InstanceCommand;
    type Event = InstanceEvent;
    type Error = InstanceError;
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
        match (self.state.as_mut(), event) {
            (_, InstanceEvent::InstanceRequested(e)) => {
                self.state = Some(InstanceState::requested(e));
            }
            (Some(state), event) => state.apply(event),
            // Events of an instance never requested: nothing to change (cannot be stored, as
            // `decide` refuses every command but `Request` on an absent instance).
            (None, _) => {}
        }
    }
}
