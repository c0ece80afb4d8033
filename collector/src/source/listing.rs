//! The engine shared by the REST sources: streams (a subscription, a resource group, an Entra log),
//! each with its own position; one query at a time, followed page by page through `nextLink`, handed
//! to the pipeline in batches.
//!
//! A page's cursor is the position before its query until the query's last page: the `nextLink` of a
//! listing expires, so a restart re-runs the query and dedup hides what was delivered already.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::checkpoint::Offsets;
use crate::json::RawJson;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::client::Api;
use crate::azure::{ApiError, AzureClient};
use crate::normalise::RawRecord;

/// What distinguishes one REST source from another.
pub trait Listing: Send + Sync + 'static {
    /// The source kind, as in [`super::Source::KIND`].
    const KIND: &'static str;
    type Position: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static;

    fn api(&self, stream: &str) -> Api;
    /// Where a stream without a checkpoint begins.
    fn start(&self, stream: &str, now: DateTime<Utc>) -> Self::Position;
    /// The next query of a stream (its first page's URL) and the position once it is delivered;
    /// None when nothing is due.
    fn plan(
        &self,
        stream: &str,
        position: &Self::Position,
        now: DateTime<Utc>,
    ) -> Option<(String, Self::Position)>;
    /// Turns a listed record into a record for the pipeline; None drops it (client-side filters).
    fn record(&self, stream: &str, position: &Self::Position, raw: RawJson) -> Option<RawRecord>;
    /// As [`Source::reread_span`].
    fn reread_span(&self) -> Option<std::time::Duration>;
}

/// A query whose `nextLink` keeps failing with a 4xx this many times in a row is started over
/// from its first page: the link has expired or was never valid, and retrying it cannot succeed.
const LINK_FAILURES_BEFORE_RESTART: u32 = 3;

struct Running<P> {
    stream: usize,
    /// The query's first page, where it starts over.
    first_url: String,
    next_url: Option<String>,
    /// 4xx answers to the current nextLink in a row.
    link_failures: u32,
    /// A foreign nextLink was dead-lettered for this query already.
    foreign_reported: bool,
    then: P,
    buffered: VecDeque<RawRecord>,
    malformed: Vec<Malformed>,
    malformed_attempts: u32,
    records: u64,
    started: std::time::Instant,
}

/// A source over a [`Listing`].
pub struct Listed<L: Listing> {
    listing: L,
    client: Arc<AzureClient>,
    batch_size: usize,
    streams: Vec<String>,
    positions: BTreeMap<String, L::Position>,
    next_stream: usize,
    running: Option<Running<L::Position>>,
}

impl<L: Listing> std::fmt::Debug for Listed<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listed")
            .field("streams", &self.streams)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl<L: Listing> Listed<L> {
    /// `cursor` is the stored `{"streams": {name: position}}`; streams it does not name start fresh,
    /// and stored streams no longer configured are dropped.
    pub fn new(
        listing: L,
        client: Arc<AzureClient>,
        streams: Vec<String>,
        batch_size: usize,
        cursor: Option<serde_json::Value>,
    ) -> Result<Self, SourceError> {
        let mut stored: BTreeMap<String, L::Position> = match cursor {
            Some(mut value) => serde_json::from_value(value["streams"].take())
                .map_err(|e| SourceError::Cursor(e.to_string()))?,
            None => BTreeMap::new(),
        };
        let now = Utc::now();
        let mut positions = BTreeMap::new();
        for stream in &streams {
            let position = match stored.remove(stream) {
                Some(position) => position,
                None => {
                    let position = listing.start(stream, now);
                    tracing::info!(stream = %stream, position = ?position, "no position stored for this stream; starting at startAt");
                    position
                }
            };
            positions.insert(stream.clone(), position);
        }
        for stream in stored.keys() {
            tracing::info!(stream = %stream, "dropping the stored position of a stream no longer configured");
        }
        Ok(Listed {
            listing,
            client,
            batch_size: batch_size.max(1),
            streams,
            positions,
            next_stream: 0,
            running: None,
        })
    }

    fn cursor(&self) -> Result<serde_json::Value, SourceError> {
        serde_json::to_value(&self.positions)
            .map(|streams| serde_json::json!({ "streams": streams }))
            .map_err(|e| SourceError::Cursor(e.to_string()))
    }

    /// Picks the next stream with a query due, round robin so one busy stream cannot starve others.
    fn plan(&mut self) -> Option<Running<L::Position>> {
        let now = Utc::now();
        let count = self.streams.len();
        for k in 0..count {
            let index = (self.next_stream + k) % count;
            let stream = &self.streams[index];
            let position = self.positions.get(stream)?;
            if let Some((url, then)) = self.listing.plan(stream, position, now) {
                self.next_stream = (index + 1) % count;
                tracing::debug!(stream = %stream, url = %url, "querying");
                return Some(Running {
                    stream: index,
                    first_url: url.clone(),
                    next_url: Some(url),
                    link_failures: 0,
                    foreign_reported: false,
                    then,
                    buffered: VecDeque::new(),
                    malformed: Vec::new(),
                    malformed_attempts: 0,
                    records: 0,
                    started: std::time::Instant::now(),
                });
            }
        }
        None
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        loop {
            let Some(run) = self.running.as_mut() else {
                match self.plan() {
                    Some(run) => {
                        self.running = Some(run);
                        continue;
                    }
                    None => return Ok(Fetch::CaughtUp),
                }
            };
            let stream = &self.streams[run.stream];
            if run.buffered.is_empty()
                && run.malformed.is_empty()
                && let Some(url) = run.next_url.clone()
            {
                let api = self.listing.api(stream);
                match self.client.get_page(&url, api).await {
                    Ok(page) => {
                        run.malformed_attempts = 0;
                        run.link_failures = 0;
                        run.next_url = page.next_link;
                        let position = self.positions.get(stream);
                        for raw in page.records {
                            run.records += 1;
                            if let Some(position) = position
                                && let Some(record) = self.listing.record(stream, position, raw)
                            {
                                run.buffered.push_back(record);
                            }
                        }
                    }
                    Err(ApiError::Malformed {
                        api,
                        url,
                        reason,
                        body,
                    }) => {
                        run.malformed_attempts += 1;
                        if run.malformed_attempts > 1 {
                            return Err(ApiError::Malformed {
                                api,
                                url,
                                reason,
                                body,
                            }
                            .into());
                        }
                        // Kept once for whoever investigates. The page is asked for again (with
                        // backoff) until Azure answers properly: skipping it would lose the events
                        // in it and every page after it, since its nextLink is unreadable.
                        run.malformed.push(Malformed {
                            origin: url,
                            reason: format!("{api} page is not a listing: {reason}"),
                            payload: body,
                        });
                    }
                    Err(e @ ApiError::ForeignLink { .. }) => {
                        // Never fetched. Kept once for whoever investigates; the query starts over
                        // (dedup hides what its first pages deliver again), with backoff.
                        if !run.foreign_reported
                            && let ApiError::ForeignLink { api, url, expected } = &e
                        {
                            run.foreign_reported = true;
                            run.malformed.push(Malformed {
                                origin: url.clone(),
                                reason: format!(
                                    "{api} sent a nextLink outside {expected}; not followed"
                                ),
                                payload: String::new(),
                            });
                        }
                        run.next_url = Some(run.first_url.clone());
                        return Err(e.into());
                    }
                    Err(e @ ApiError::Status { api, status, .. })
                        if (400..500).contains(&status) && url != run.first_url =>
                    {
                        run.link_failures += 1;
                        if run.link_failures >= LINK_FAILURES_BEFORE_RESTART {
                            tracing::warn!(
                                api,
                                status,
                                "a nextLink keeps failing; starting the query over"
                            );
                            run.link_failures = 0;
                            run.next_url = Some(run.first_url.clone());
                        }
                        return Err(e.into());
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let take = run.buffered.len().min(self.batch_size);
            let records: Vec<RawRecord> = run.buffered.drain(..take).collect();
            let malformed = std::mem::take(&mut run.malformed);
            if run.buffered.is_empty() && run.next_url.is_none() {
                tracing::debug!(stream = %stream, records = run.records, took = ?run.started.elapsed(), "query complete");
                self.positions.insert(stream.clone(), run.then.clone());
                self.running = None;
            }
            return Ok(Fetch::Batch(Batch {
                records,
                malformed,
                cursor: self.cursor()?,
                offsets: Offsets::new(),
            }));
        }
    }
}

impl<L: Listing> Source for Listed<L> {
    const KIND: &'static str = L::KIND;

    fn reread_span(&self) -> Option<std::time::Duration> {
        self.listing.reread_span()
    }

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}
