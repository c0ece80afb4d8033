//! Talking to Azure's REST APIs: which endpoints a cloud has, how the collector gets its tokens, and
//! the HTTP client that pages through ARM and Graph listings.

pub mod blob;
pub mod client;
pub mod credential;
pub mod storage;
pub mod table;

pub use azlog_config::azure::{Audience, Endpoints};
pub use client::{ApiError, AzureClient, Page};

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass), so OData filters
/// reach the API exactly as written.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
