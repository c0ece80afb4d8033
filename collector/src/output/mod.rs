//! Outputs: where events go.
//!
//! Each output runs in its own task, takes batches in order and answers only once a batch is
//! delivered — retrying with backoff for as long as it takes. The pipeline commits the checkpoint
//! once every output has answered for a batch, so a slow or broken output holds the checkpoint back
//! rather than losing events.

pub mod event_xml;
pub mod file;
pub mod line;
pub mod stdout;
pub mod syslog;
pub mod windows_event_log;

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::OutputConfig;
use crate::dedup::IdHasher;
use crate::event::Event;
use crate::metrics::Metrics;

/// A batch as the outputs see it.
#[derive(Debug)]
pub struct Dispatch {
    pub seq: u64,
    pub events: Vec<Event>,
    pub dispatched_at: Instant,
}

/// What an output did with a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    /// Events found already written before a crash, not written again.
    pub skipped: usize,
    pub truncated: usize,
}

/// A delivery that failed and will be retried.
#[derive(Debug, thiserror::Error)]
#[error("failed to deliver to {output}: {message}")]
pub struct DeliveryError {
    pub output: String,
    /// Short label for metrics: `connect`, `write`, `ack_timeout`, `io`, …
    pub category: &'static str,
    pub message: String,
}

/// Why an output could not be set up at all (bad certificate file, unwritable directory).
#[derive(Debug, thiserror::Error)]
#[error("failed to set up output {output}: {message}")]
pub struct SetupError {
    pub output: String,
    pub message: String,
}

pub trait Output: Send + 'static {
    fn name(&self) -> &str;

    /// Delivers every event of the batch, or fails so the whole batch is retried.
    fn deliver(
        &mut self,
        batch: &Dispatch,
    ) -> impl Future<Output = Result<Delivered, DeliveryError>> + Send;

    /// Makes everything delivered so far durable. Called once after a group of deliveries and
    /// before any of them is acknowledged, so one fsync covers many batches under load.
    fn sync(&mut self) -> impl Future<Output = Result<(), DeliveryError>> + Send {
        async { Ok(()) }
    }

    /// Periodic housekeeping while idle (finishing files that reached their age).
    fn tick(&mut self) -> impl Future<Output = Result<(), DeliveryError>> + Send {
        async { Ok(()) }
    }

    /// Flushes and finishes before the process exits.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Everything an output needs from the pipeline at construction.
#[derive(Debug, Clone)]
pub struct OutputContext {
    pub hasher: IdHasher,
    /// How many events may have been written but not checkpointed when the process died; outputs
    /// that can read back what they wrote look this far back at start.
    pub recovery_window: usize,
    pub metrics: Arc<Metrics>,
}

/// The configured outputs, dispatched statically.
#[derive(Debug)]
pub enum AnyOutput {
    // Boxed, as the syslog output: they hold their folders, buffers and settings (the syslog
    // output its TLS state too), several times the size of the others.
    File(Box<file::FileOutput>),
    Syslog(Box<syslog::SyslogOutput>),
    Stdout(stdout::StdoutOutput),
    WindowsEventLog(windows_event_log::WindowsEventLogOutput),
}

impl AnyOutput {
    pub fn build(
        config: &OutputConfig,
        index: usize,
        ctx: &OutputContext,
    ) -> Result<AnyOutput, SetupError> {
        let name = config.name(index);
        Ok(match config {
            OutputConfig::File(c) => {
                AnyOutput::File(Box::new(file::FileOutput::open(name, c.clone(), ctx)?))
            }
            OutputConfig::Syslog(c) => {
                AnyOutput::Syslog(Box::new(syslog::SyslogOutput::new(name, c.clone(), ctx)?))
            }
            OutputConfig::Stdout(c) => AnyOutput::Stdout(stdout::StdoutOutput::new(name, c.format)),
            OutputConfig::WindowsEventLog(c) => {
                AnyOutput::WindowsEventLog(windows_event_log::WindowsEventLogOutput::open(name, c)?)
            }
        })
    }
}

impl Output for AnyOutput {
    fn name(&self) -> &str {
        match self {
            AnyOutput::File(o) => o.name(),
            AnyOutput::Syslog(o) => o.name(),
            AnyOutput::Stdout(o) => o.name(),
            AnyOutput::WindowsEventLog(o) => o.name(),
        }
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        match self {
            AnyOutput::File(o) => o.deliver(batch).await,
            AnyOutput::Syslog(o) => o.deliver(batch).await,
            AnyOutput::Stdout(o) => o.deliver(batch).await,
            AnyOutput::WindowsEventLog(o) => o.deliver(batch).await,
        }
    }

    async fn sync(&mut self) -> Result<(), DeliveryError> {
        match self {
            AnyOutput::File(o) => o.sync().await,
            AnyOutput::Syslog(o) => o.sync().await,
            AnyOutput::Stdout(o) => o.sync().await,
            AnyOutput::WindowsEventLog(o) => o.sync().await,
        }
    }

    async fn tick(&mut self) -> Result<(), DeliveryError> {
        match self {
            AnyOutput::File(o) => o.tick().await,
            AnyOutput::Syslog(o) => o.tick().await,
            AnyOutput::Stdout(o) => o.tick().await,
            AnyOutput::WindowsEventLog(o) => o.tick().await,
        }
    }

    async fn close(&mut self) {
        match self {
            AnyOutput::File(o) => o.close().await,
            AnyOutput::Syslog(o) => o.close().await,
            AnyOutput::Stdout(o) => o.close().await,
            AnyOutput::WindowsEventLog(o) => o.close().await,
        }
    }
}
