//! The engine shared by the REST sources: streams (a subscription, a resource group, an Entra log),
//! each with its own position; a query per stream at a time, followed page by page through
//! `nextLink`, handed to the pipeline in batches. Streams of different scopes (subscriptions: each
//! has its own ARM read budget) are read concurrently, up to [`CONCURRENT_QUERIES`].
//!
//! A page's cursor is the position before its query until the query's last page: the `nextLink` of a
//! listing expires, so a restart re-runs the query and dedup hides what was delivered already. A
//! stream's position moves only once every record of its query is in a batch handed over, so the
//! cursor of any batch holds only queries wholly delivered by then, whichever stream it is from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::checkpoint::Offsets;
use crate::json::RawJson;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::client::Api;
use crate::azure::client::Page;
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
    /// The next query of a stream; None when nothing is due.
    fn plan(
        &self,
        stream: &str,
        position: &Self::Position,
        now: DateTime<Utc>,
    ) -> Option<Query<Self::Position>>;
    /// Turns a listed record into a record for the pipeline; None drops it (client-side filters).
    fn record(&self, stream: &str, position: &Self::Position, raw: RawJson) -> Option<RawRecord>;
    /// As [`Source::reread_span`].
    fn reread_span(&self) -> Option<std::time::Duration>;
    /// What a stream's requests count against (its subscription): streams of one scope are never
    /// read at the same time.
    fn scope<'a>(&self, stream: &'a str) -> &'a str {
        stream
    }
}

/// Queries of different scopes read at once. ARM budgets reads per subscription; a handful of
/// requests in flight hides its latency without making one collector a burden on the service.
pub const CONCURRENT_QUERIES: usize = 8;

/// A query a listing asks for, and where the stream stands after it.
#[derive(Debug, Clone)]
pub struct Query<P> {
    /// Its first page.
    pub url: String,
    /// The position once every record of it is delivered.
    pub then: P,
    /// The position instead when it came back in one page.
    pub then_if_one_page: P,
    /// When its first page is not its last: the position to plan from instead, dropping that page
    /// before anything of the query is delivered.
    pub narrower: Option<P>,
}

impl<P: Clone> Query<P> {
    /// A query whose size does not change what comes next.
    pub fn new(url: String, then: P) -> Query<P> {
        Query {
            url,
            then_if_one_page: then.clone(),
            then,
            narrower: None,
        }
    }
}

/// A query whose `nextLink` keeps failing with a 4xx this many times in a row is started over
/// from its first page: the link has expired or was never valid, and retrying it cannot succeed.
const LINK_FAILURES_BEFORE_RESTART: u32 = 3;

struct Running<P> {
    stream: usize,
    /// The page being fetched, by its own task so that it goes on while other streams' records
    /// are handed over.
    fetch: Option<Fetching>,
    /// The query as planned: its first page, where it starts over, and where it leads.
    query: Query<P>,
    /// The page to ask for (being asked for, while `fetch` is some); None once all were read.
    next_url: Option<String>,
    /// 4xx answers to the current nextLink in a row.
    link_failures: u32,
    /// A foreign nextLink was dead-lettered for this query already.
    foreign_reported: bool,
    pages: u32,
    buffered: VecDeque<RawRecord>,
    malformed: Vec<Malformed>,
    malformed_attempts: u32,
    records: u64,
    started: std::time::Instant,
}

/// A page request in its own task; dropping it stops the task.
struct Fetching(tokio::task::JoinHandle<Result<Page, ApiError>>);

impl Drop for Fetching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A source over a [`Listing`].
pub struct Listed<L: Listing> {
    listing: L,
    client: Arc<AzureClient>,
    batch_size: usize,
    streams: Vec<String>,
    positions: BTreeMap<String, L::Position>,
    next_stream: usize,
    running: Vec<Running<L::Position>>,
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
            running: Vec::new(),
        })
    }

    /// The listing it runs.
    pub fn listing(&self) -> &L {
        &self.listing
    }

    /// Where `stream` stands.
    pub fn position(&self, stream: &str) -> Option<&L::Position> {
        self.positions.get(stream)
    }

    /// Every stream's position, as a batch's cursor.
    pub fn cursor(&self) -> Result<serde_json::Value, SourceError> {
        serde_json::to_value(&self.positions)
            .map(|streams| serde_json::json!({ "streams": streams }))
            .map_err(|e| SourceError::Cursor(e.to_string()))
    }

    /// Picks the next stream with a query due whose scope is not being read, round robin so one
    /// busy stream cannot starve others.
    fn plan(&mut self) -> Option<Running<L::Position>> {
        let now = Utc::now();
        let count = self.streams.len();
        for k in 0..count {
            let index = (self.next_stream + k) % count;
            let stream = &self.streams[index];
            let scope = self.listing.scope(stream);
            if self
                .running
                .iter()
                .any(|run| self.listing.scope(&self.streams[run.stream]) == scope)
            {
                continue;
            }
            let Some(position) = self.positions.get(stream) else {
                continue;
            };
            if let Some(query) = self.listing.plan(stream, position, now) {
                self.next_stream = (index + 1) % count;
                tracing::debug!(stream = %stream, url = %query.url, "querying");
                return Some(Running {
                    stream: index,
                    fetch: None,
                    next_url: Some(query.url.clone()),
                    query,
                    link_failures: 0,
                    foreign_reported: false,
                    pages: 0,
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
            while self.running.len() < CONCURRENT_QUERIES
                && let Some(run) = self.plan()
            {
                self.running.push(run);
            }
            if self.running.is_empty() {
                return Ok(Fetch::CaughtUp);
            }
            // Records at hand go first; every query without any asks for its next page meanwhile.
            for run in &mut self.running {
                if run.buffered.is_empty()
                    && run.malformed.is_empty()
                    && run.fetch.is_none()
                    && let Some(url) = run.next_url.clone()
                {
                    let (client, api) = (
                        self.client.clone(),
                        self.listing.api(&self.streams[run.stream]),
                    );
                    let task = tokio::spawn(async move { client.get_page(&url, api).await });
                    run.fetch = Some(Fetching(task));
                }
            }
            if let Some(index) = self.running.iter().position(|run| {
                !run.buffered.is_empty() || !run.malformed.is_empty() || run.next_url.is_none()
            }) {
                return self.hand_over(index);
            }
            let (index, fetched) = self.first_page().await;
            self.take_page(index, fetched)?;
        }
    }

    /// The first page to arrive among the queries' requests: its query's index and what came.
    async fn first_page(&mut self) -> (usize, Result<Page, ApiError>) {
        let waiting = self.running.iter_mut().enumerate().filter_map(|(i, run)| {
            run.fetch
                .as_mut()
                .map(|f| Box::pin(async move { (i, (&mut f.0).await) }))
        });
        let ((index, joined), _, _) = futures::future::select_all(waiting).await;
        self.running[index].fetch = None;
        let fetched = joined.unwrap_or_else(|e| {
            // A page request's task only ends early if it panicked: fail loudly, as a source would.
            std::panic::resume_unwind(e.into_panic())
        });
        (index, fetched)
    }

    /// Takes what a query's page request brought; an error leaves the query where it can retry.
    fn take_page(
        &mut self,
        index: usize,
        fetched: Result<Page, ApiError>,
    ) -> Result<(), SourceError> {
        let run = &mut self.running[index];
        let stream = &self.streams[run.stream];
        match fetched {
            Ok(page) => {
                run.malformed_attempts = 0;
                run.link_failures = 0;
                run.pages += 1;
                if run.pages == 1
                    && page.next_link.is_some()
                    && let Some(narrower) = run.query.narrower.take()
                {
                    // Nothing of the query is delivered yet: ask a narrower one instead.
                    tracing::debug!(stream = %stream, "the window holds more than a page; narrowing it");
                    self.positions.insert(stream.clone(), narrower);
                    self.running.remove(index);
                    return Ok(());
                }
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
                Ok(())
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
                Ok(())
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
                        reason: format!("{api} sent a nextLink outside {expected}; not followed"),
                        payload: String::new(),
                    });
                }
                run.next_url = Some(run.query.url.clone());
                Err(e.into())
            }
            Err(e @ ApiError::Status { api, status, .. })
                if (400..500).contains(&status)
                    && run.next_url.as_ref() != Some(&run.query.url) =>
            {
                run.link_failures += 1;
                if run.link_failures >= LINK_FAILURES_BEFORE_RESTART {
                    tracing::warn!(
                        api,
                        status,
                        "a nextLink keeps failing; starting the query over"
                    );
                    run.link_failures = 0;
                    run.next_url = Some(run.query.url.clone());
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A batch of the records query `index` holds; when they are its last, its stream moves on.
    fn hand_over(&mut self, index: usize) -> Result<Fetch, SourceError> {
        let run = &mut self.running[index];
        let stream = &self.streams[run.stream];
        let take = run.buffered.len().min(self.batch_size);
        let records: Vec<RawRecord> = run.buffered.drain(..take).collect();
        let malformed = std::mem::take(&mut run.malformed);
        if run.buffered.is_empty() && run.next_url.is_none() {
            tracing::debug!(stream = %stream, records = run.records, took = ?run.started.elapsed(), "query complete");
            let then = if run.pages <= 1 {
                run.query.then_if_one_page.clone()
            } else {
                run.query.then.clone()
            };
            self.positions.insert(stream.clone(), then);
            self.running.remove(index);
        }
        Ok(Fetch::Batch(Batch {
            records,
            malformed,
            cursor: self.cursor()?,
            offsets: Offsets::new(),
        }))
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
