//! Progress shown to operators, in percent: the predecessor's table, reached when each step
//! completed. Only `apply` uses these, from events; no command carries a progress value.
//!
//! Progress never goes down, except on a reinstall, which goes back to [`SERVER_STARTED`]; a
//! failed or terminated instance keeps the value it had reached.

/// `InstanceRequested`.
pub const REQUESTED: u8 = 5;
/// `ServerCreated` (the predecessor's "provider create").
pub const SERVER_CREATED: u8 = 20;
/// `VolumeAttached` (the predecessor's "volume resize").
pub const VOLUME_ATTACHED: u8 = 25;
/// `PowerOnRequested` (the predecessor's "provider start").
pub const POWER_ON_REQUESTED: u8 = 30;
/// `ServerStarted`, with a public IP (the predecessor's "get IP").
pub const SERVER_STARTED: u8 = 40;
/// `SshAccessible`.
pub const SSH_ACCESSIBLE: u8 = 50;
/// `InstallCompleted` (the predecessor's "SSH install").
pub const INSTALLED: u8 = 60;
/// `ReadinessCheckPassed` for `vllm_http_ok`.
pub const VLLM_HTTP_OK: u8 = 70;
/// `ReadinessCheckPassed` for `model_loaded`.
pub const MODEL_LOADED: u8 = 80;
/// `ReadinessCheckPassed` for `vllm_warmup`.
pub const WARMED_UP: u8 = 90;
/// `ReadinessCheckPassed` for `health_check`.
pub const HEALTH_CHECKED: u8 = 95;
/// `InstanceReady`.
pub const READY: u8 = 100;
