//! The azlog operator: LogSource resources reconciled into collector workloads.

pub mod children;
pub mod crd;
pub mod render;
