//! The SubscriptionAuthorization controller: Azure role assignments and Graph permissions for the
//! identity LogSources collect with.

pub mod azure;
pub mod client_secret;
pub mod controller;
pub mod grants;
pub mod graph;
pub mod plan;
pub mod role;
