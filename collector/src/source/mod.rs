//! Sources: where events come from.
//!
//! A source fetches a page of records and the cursor that follows it. It never commits anything: the
//! pipeline stores the cursor only once every output has delivered the page, and hands the stored
//! cursor back when the process starts again.

pub mod simulate;

use std::future::Future;

use crate::normalise::RawRecord;

/// A page of records and the position just after it.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<RawRecord>,
    /// Payloads that were not valid JSON, kept so nothing is silently skipped.
    pub malformed: Vec<Malformed>,
    /// Where to resume after this batch; opaque to everything but the source.
    pub cursor: serde_json::Value,
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
}

impl SourceError {
    pub fn category(&self) -> &'static str {
        match self {
            SourceError::Cursor(_) => "cursor",
        }
    }
}

pub trait Source: Send + 'static {
    /// A short name for logs, metrics and checkpoints (`simulate`, `wad`, …). A checkpoint written by
    /// one kind of source is never handed to another.
    const KIND: &'static str;

    fn fetch(&mut self) -> impl Future<Output = Result<Fetch, SourceError>> + Send;
}
