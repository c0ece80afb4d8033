//! The azlog operator: LogSource resources reconciled into collector workloads.

pub mod authorization;
pub mod children;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod policy;
pub mod render;
