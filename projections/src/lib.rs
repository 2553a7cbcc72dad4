//! Read models of inferplane and the runner that keeps them current.
//!
//! A [`Projection`] turns batches of events into read-model rows inside a transaction the
//! [`runner`] opens; the runner moves the projection's checkpoint in that same transaction, so
//! each event takes effect exactly once. Each projection owns one PostgreSQL schema
//! (`rm_<name>`), which lets a rebuild fill a fresh schema while the API keeps reading the old
//! one, then swap them in one short transaction.

pub mod api_keys;
pub mod gpu_catalog;
pub mod instances;
pub mod models;
pub mod runner;
mod status;
pub mod usage;

pub use runner::{
    Projection, ProjectionRunner, RebuildProgress, ensure_installed, live_schema, rebuild, stopped,
};
pub use status::{ProjectionStatus, status};

use std::sync::Arc;

/// Every projection of the platform, in the order they are started.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(models::ModelCatalog),
        Arc::new(gpu_catalog::GpuCatalog),
        Arc::new(instances::Instances),
        Arc::new(usage::UsageModel),
        Arc::new(api_keys::ApiKeys),
    ]
}

/// The projection named `name`, if any.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
