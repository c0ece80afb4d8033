//! Talking to Azure's REST APIs: which endpoints a cloud has, how the collector gets its tokens, and
//! the HTTP client that pages through ARM and Graph listings.

pub mod blob;
pub mod client;
pub mod cloud;
pub mod credential;
pub mod storage;
pub mod table;

pub use client::{ApiError, AzureClient, Page};
pub use cloud::{Audience, Endpoints};
