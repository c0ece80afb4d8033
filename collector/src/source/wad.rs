//! The `wad` source: rows of a VM diagnostics table (WADWindowsEventLogsTable, WADLogsTable, …).
//!
//! Rows are read in windows of the server's `Timestamp` (when the storage service stored the row),
//! never of the event's own time or of the PartitionKey minute: an agent that uploads a minute late
//! writes into an old partition, but its rows carry a new `Timestamp` and land in a window not yet
//! read. A window ends `lateArrival` behind now so writes still in flight are in the next one.
//! Inside a window the table answers in (PartitionKey, RowKey) order, and the cursor keeps the last
//! row delivered, so a restart resumes mid-window without re-reading it.

mod page;
pub mod row;

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::AzureClient;
use crate::azure::storage;
use crate::azure::table::{TableClient, TablePage};
use crate::checkpoint::Offsets;
use crate::config::{StartAt, WadConfig};
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::normalise::RawRecord;
use page::{Row, rows_of_page};

/// Rows asked for a page: the most table storage answers. Fewer pages are fewer queries the
/// service runs, whatever `pipeline.batchSize` the rows are then handed over in.
const PAGE_SIZE: usize = 1000;

/// Where the table has been read to, stored in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WadCursor {
    /// Rows stored before this were all delivered (except those of the window in progress).
    from: DateTime<Utc>,
    /// The end of the window in progress, fixed when it began.
    window_end: Option<DateTime<Utc>>,
    /// The last row of the window in progress delivered: (PartitionKey, RowKey).
    after: Option<(String, String)>,
    /// A first read of the whole table in progress (startAt: Earliest). It has no Timestamp filter,
    /// which is how the table service (and Azurite) serve rows fastest; the windows that follow
    /// start `lateArrival` before the scan began, and dedup hides the rows read by both.
    #[serde(default)]
    scanning: bool,
    /// When that first read began: until the windows reach it, they read again rows it delivered,
    /// and dedup must remember them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rereads_until: Option<DateTime<Utc>>,
}

/// A page as a slice's reader hands it over: unparsed, so that the reader's next request is in
/// flight while this one is parsed and delivered; `last` ends the slice's query.
#[derive(Debug)]
struct SlicePage {
    page: TablePage,
    last: bool,
}

/// One query over `[cursor.from, end)` (the whole table, for the first scan), read by its own task
/// one page ahead. Slices follow one another without gaps: each begins where the one before it
/// ended. Dropping one stops its task.
#[derive(Debug)]
struct Slice {
    end: DateTime<Utc>,
    pages: mpsc::Receiver<Result<SlicePage, crate::azure::ApiError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Slice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rows of a page read but not yet handed over: a page holds up to 1000 rows, a batch up to
/// `pipeline.batchSize`.
#[derive(Debug, Default)]
struct Held {
    rows: std::vec::IntoIter<Row>,
    /// The end of the window, when the page was its last.
    window_done: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct Wad {
    client: Arc<TableClient>,
    table: String,
    late_arrival: TimeDelta,
    poll_interval: TimeDelta,
    batch_size: usize,
    parallel: usize,
    cursor: WadCursor,
    /// The queries being read, in order; the cursor is inside the first.
    slices: VecDeque<Slice>,
    held: Held,
    metrics: Arc<Metrics>,
}

impl Wad {
    pub fn new(
        config: &WadConfig,
        client: Arc<AzureClient>,
        poll_interval: std::time::Duration,
        batch_size: usize,
        cursor: Option<serde_json::Value>,
    ) -> Result<Wad, SourceError> {
        let (endpoint, auth) = storage::Account {
            name: &config.account,
            endpoint: config.endpoint.as_deref(),
            key_file: config.account_key_file.as_deref(),
            sas_file: config.sas_token_file.as_deref(),
        }
        .connect("table", &client.endpoints().storage_suffix)
        .map_err(SourceError::Setup)?;
        let late_arrival = TimeDelta::from_std(config.late_arrival).unwrap_or(TimeDelta::MAX);
        let cursor = match cursor {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| SourceError::Cursor(format!("wad cursor: {e}")))?,
            None => {
                let now = Utc::now();
                let (from, scanning) = match config.start_at {
                    StartAt::Now => (now, false),
                    StartAt::Earliest => (now - late_arrival, true),
                    StartAt::Time(t) => (t, false),
                };
                WadCursor {
                    from,
                    window_end: None,
                    after: None,
                    scanning,
                    rereads_until: scanning.then_some(now),
                }
            }
        };
        let metrics = client.metrics().clone();
        Ok(Wad {
            client: Arc::new(TableClient::new(client, &endpoint, &config.account, auth)),
            table: config.table.clone(),
            late_arrival,
            poll_interval: TimeDelta::from_std(poll_interval).unwrap_or(TimeDelta::MAX),
            batch_size: batch_size.max(1),
            parallel: config.parallel_queries.max(1),
            cursor,
            slices: VecDeque::new(),
            held: Held::default(),
            metrics,
        })
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        if self.held.rows.len() == 0 {
            if self.slices.is_empty() && !self.plan() {
                return Ok(Fetch::CaughtUp);
            }
            self.receive().await?;
        }
        let rows: Vec<Row> = self.held.rows.by_ref().take(self.batch_size).collect();
        let window_done = if self.held.rows.len() == 0 {
            self.held.window_done.take()
        } else {
            None
        };
        self.batch(rows, window_done)
    }

    /// Starts the queries that go on from the cursor: the window (or first scan) in progress, the
    /// next window, or a backlog cut into parallel slices. False when caught up.
    fn plan(&mut self) -> bool {
        let end = match self.cursor.window_end {
            Some(end) => end,
            None if self.cursor.scanning => self.cursor.from,
            None => {
                let end = Utc::now() - self.late_arrival;
                let behind = end - self.cursor.from;
                if behind < self.poll_interval {
                    return false;
                }
                if self.parallel > 1 && behind > self.poll_interval * 2 {
                    self.read_ahead(end);
                    return true;
                }
                self.cursor.window_end = Some(end);
                end
            }
        };
        let from = (!self.cursor.scanning).then_some(self.cursor.from);
        let filter = filter(from, end, self.cursor.after.as_ref());
        let slice = self.slice(filter, end);
        self.slices.push_back(slice);
        true
    }

    /// Cuts the backlog `[cursor.from, end)` into slices and starts reading them all.
    fn read_ahead(&mut self, end: DateTime<Utc>) {
        let from = self.cursor.from;
        let count = i32::try_from(self.parallel).unwrap_or(1);
        let step = (end - from) / count;
        tracing::info!(%from, %end, slices = count, "reading a backlog in parallel slices");
        for i in 0..count {
            let start = from + step * i;
            let stop = if i + 1 == count { end } else { start + step };
            let slice = self.slice(filter(Some(start), stop, None), stop);
            self.slices.push_back(slice);
        }
    }

    fn slice(&self, filter: String, end: DateTime<Utc>) -> Slice {
        let (tx, pages) = mpsc::channel(1);
        let task = tokio::spawn(read_slice(
            self.client.clone(),
            self.table.clone(),
            filter,
            tx,
            self.metrics.clone(),
        ));
        Slice { end, pages, task }
    }

    /// Takes the next page of the first slice into `held`. On an error the slices are dropped:
    /// the cursor says where the first one stands, and the next call resumes it with one query.
    async fn receive(&mut self) -> Result<(), SourceError> {
        let Some(slice) = self.slices.front_mut() else {
            return Ok(());
        };
        if self.cursor.window_end.is_none() && !self.cursor.scanning {
            self.cursor.window_end = Some(slice.end);
        }
        let end = slice.end;
        let page = match slice.pages.recv().await {
            Some(page) => page,
            // The reader hands over its last page or its error before it ends.
            None => unreachable!("a table reader ended without its last page"),
        };
        let read = page.and_then(|p| Ok((p.page.parse(rows_of_page)?, p.last)));
        match read {
            Ok((rows, last)) => {
                if last {
                    self.slices.pop_front();
                }
                self.held = Held {
                    rows: rows.into_iter(),
                    window_done: last.then_some(end),
                };
                Ok(())
            }
            Err(e) => {
                self.slices.clear();
                Err(e.into())
            }
        }
    }

    /// A batch of `rows`, the cursor past its last row; `window_done` is the end of a window read
    /// to the end, where the next one starts.
    fn batch(
        &mut self,
        rows: Vec<Row>,
        window_done: Option<DateTime<Utc>>,
    ) -> Result<Fetch, SourceError> {
        let mut records = Vec::with_capacity(rows.len());
        let mut malformed = Vec::new();
        for row in rows {
            match row {
                Row::Typed(raw, columns) => {
                    records.push(RawRecord {
                        kind: EventKind::Wad,
                        raw,
                        id_hint: None,
                        wad_columns: Some(columns),
                        schema: crate::normalise::Schema::Api,
                    });
                }
                Row::Refused { payload, reason } => malformed.push(Malformed {
                    origin: format!("{} row", self.table),
                    reason,
                    payload,
                }),
            }
        }
        let last = records
            .last()
            .and_then(|r| Some(r.wad_columns.as_deref()?.keys(r.raw.get())));
        if let Some((partition, row)) = last {
            self.cursor.after = Some((partition.to_owned(), row.to_owned()));
        }
        if let Some(end) = window_done {
            // The window (or the first scan) is complete: the next window starts where it ended.
            self.cursor = WadCursor {
                from: end,
                window_end: None,
                after: None,
                scanning: false,
                rereads_until: self.cursor.rereads_until.filter(|until| end < *until),
            };
        }
        let cursor = serde_json::to_value(&self.cursor)
            .map_err(|e| SourceError::Cursor(format!("wad cursor: {e}")))?;
        Ok(Fetch::Batch(Batch {
            records,
            malformed,
            cursor,
            offsets: Offsets::new(),
        }))
    }
}

/// The query of rows stored in `[from, end)` (all rows, for the first scan, when `from` is None),
/// past `after` in (PartitionKey, RowKey) order.
fn filter(
    from: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    after: Option<&(String, String)>,
) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut clauses = Vec::new();
    if let Some(from) = from {
        clauses.push(format!(
            "Timestamp ge datetime'{}' and Timestamp lt datetime'{}'",
            time(from),
            time(end)
        ));
    }
    if let Some((partition, row)) = after {
        let (p, r) = (odata_string(partition), odata_string(row));
        clauses.push(format!(
            "(PartitionKey gt '{p}' or (PartitionKey eq '{p}' and RowKey gt '{r}'))"
        ));
    }
    clauses.join(" and ")
}

/// Reads one slice's query to its end, handing over each page as it arrives and asking for the
/// next at once; stops at the first error (handed over too) or when nobody takes the pages any more.
async fn read_slice(
    client: Arc<TableClient>,
    table: String,
    filter: String,
    pages: mpsc::Sender<Result<SlicePage, crate::azure::ApiError>>,
    metrics: Arc<Metrics>,
) {
    // Counted down on return and when the task is aborted mid-query alike.
    struct InFlight(Arc<Metrics>);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.source_queries_in_flight.dec();
        }
    }
    metrics.source_queries_in_flight.inc();
    let _in_flight = InFlight(metrics);
    let mut continuation = None;
    loop {
        let (page, next) = match client
            .query(&table, &filter, PAGE_SIZE, continuation.as_ref())
            .await
        {
            Ok((page, next)) => (
                Ok(SlicePage {
                    page,
                    last: next.is_none(),
                }),
                next,
            ),
            Err(e) => (Err(e), None),
        };
        if pages.send(page).await.is_err() {
            return;
        }
        match next {
            Some(next) => continuation = Some(next),
            None => return,
        }
    }
}

impl Source for Wad {
    const KIND: &'static str = "wad";

    /// The windows of server time never overlap; only the first read of a whole table (startAt:
    /// Earliest) is followed by windows that begin `lateArrival` before it, and read again what it
    /// delivered until they reach the time it began. Until then every id is needed (the table
    /// answers in key order, not time order, and a filtered read is slower than the first); after,
    /// none.
    fn reread_span(&self) -> Option<std::time::Duration> {
        let rereading = self.cursor.scanning || self.cursor.rereads_until.is_some();
        (!rereading).then_some(std::time::Duration::ZERO)
    }

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}

/// An OData string literal's content: a quote is doubled.
fn odata_string(text: &str) -> String {
    text.replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_in_keys_are_escaped_in_the_resume_filter() {
        assert_eq!(odata_string("it's"), "it''s");
    }
}
