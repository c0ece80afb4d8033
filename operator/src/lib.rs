//! The azlog operator: LogSource resources reconciled into collector workloads.

pub mod children;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod policy;
pub mod render;
