//! Sources: where events come from.
//!
//! A source fetches a page of records and the cursor that follows it. It never commits anything: the
//! pipeline stores the cursor only once every output has delivered the page, and hands the stored
//! cursor back when the process starts again.

pub mod activity_log;
pub mod diagnostic_logs;
pub mod entra_audit;
pub mod event_hubs;
pub mod listing;
pub mod security_alerts;
pub mod simulate;
pub mod wad;
pub mod window;

use std::future::Future;
use std::time::Duration;

use crate::azure::ApiError;

use crate::normalise::RawRecord;

/// A page of records and the position just after it.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<RawRecord>,
    /// Payloads that were not valid JSON, kept so nothing is silently skipped.
    pub malformed: Vec<Malformed>,
    /// Where to resume after this batch; opaque to everything but the source.
    pub cursor: serde_json::Value,
    /// Per-key positions this batch moves (a blob's byte offset; None forgets a key). They are
    /// kept beside the checkpoint, not in its cursor, so neither the cursor nor a batch grows with
    /// the number of keys; the source gets them back in its cursor's `offsets` at the next start.
    pub offsets: crate::checkpoint::Offsets,
}

/// A payload Azure sent that could not be parsed at all.
#[derive(Debug, Clone)]
pub struct Malformed {
    /// Where it was found (blob name and byte offset, page URL, …).
    pub origin: String,
    pub reason: String,
    pub payload: String,
}

/// What one fetch found.
#[derive(Debug)]
pub enum Fetch {
    Batch(Batch),
    /// Nothing new yet; ask again after the poll interval.
    CaughtUp,
    /// The source has nothing more, ever (a bounded simulation).
    Exhausted,
}

/// Why a fetch failed. The pipeline retries with backoff; the category labels metrics and logs.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("failed to read the source cursor from the checkpoint: {0}")]
    Cursor(String),
    #[error("failed to set up the source: {0}")]
    Setup(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl SourceError {
    pub fn category(&self) -> &'static str {
        match self {
            SourceError::Cursor(_) => "cursor",
            SourceError::Setup(_) => "setup",
            SourceError::Api(e) => e.category(),
        }
    }

    /// How long the service asked the caller to wait, when it did (Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::Api(e) => e.retry_after(),
            _ => None,
        }
    }
}

pub trait Source: Send + 'static {
    /// A short name for logs, metrics and checkpoints (`simulate`, `wad`, …). A checkpoint written by
    /// one kind of source is never handed to another.
    const KIND: &'static str;

    fn fetch(&mut self) -> impl Future<Output = Result<Fetch, SourceError>> + Send;

    /// How long after delivering an event this source may read it again on purpose (a window read
    /// once more for late records, a listing repeated whole): the ids dedup must remember at least
    /// that long. None: all of them, for now. Asked again with every batch, since it can change.
    fn reread_span(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::ZERO)
    }
}
