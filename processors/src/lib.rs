//! Process managers of inferplane.
//!
//! Each processor reacts to the global event stream with its own durable checkpoint, performs
//! one kind of side effect (a Scaleway call, a bootstrap, a probe) and feeds the outcome back
//! as a command to the aggregate. [`runtime`] holds what they share: election by advisory
//! lock, the durable work list fed from the stream, bounded concurrent dispatch, backoff.
//! [`lifecycle`] holds the instance lifecycle's processors.

pub mod lifecycle;
pub mod probes;
pub mod runtime;
pub mod settings;

pub use lifecycle::{
    AgentLaunch, InstallContext, Installer, InstanceCache, Lifecycle, LocalInstaller,
    ScriptFlavour, SshConfig, SshInstaller,
};
pub use runtime::{
    Next, Processor, ProcessorRunner, ReactionObserver, RunnerSettings, WakeMemory, Work, backoff,
};
pub use settings::LifecycleSettings;
