//! What the collector's integration tests and the end-to-end suites share: loopback ports, waits,
//! metrics scrapes, the collector run as a process, real syslog receivers, and the components the
//! install scripts put in the cache. Test code only; nothing here ships.

pub mod collector;
pub mod examples;
pub mod http;
pub mod install;
pub mod metrics;
pub mod ports;
/// rsyslog and syslog-ng run on Linux only.
#[cfg(unix)]
pub mod syslog;
pub mod wait;
