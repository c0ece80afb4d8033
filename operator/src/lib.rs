//! The azlog operator: LogSource resources reconciled into collector workloads.

pub mod crd;
