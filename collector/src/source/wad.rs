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
use crate::azure::table::{Continuation, TableClient};
use crate::checkpoint::Offsets;
use crate::config::{StartAt, WadConfig};
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::normalise::RawRecord;
use page::{Row, rows_of_page};

/// Table storage answers at most 1000 rows a page.
const MAX_PAGE: usize = 1000;

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

/// A query in progress: its filter must stay the same while its continuation is followed.
#[derive(Debug)]
struct Running {
    filter: String,
    continuation: Option<Continuation>,
}

/// Pages a slice's reader hands over; each holds up to `batchSize` rows.
type SlicePage = Result<Vec<Row>, crate::azure::ApiError>;

/// A slice of a backlog window `[from, end)` read ahead by its own task. Its pages are delivered
/// only once every slice before it is; dropping it stops the task.
#[derive(Debug)]
struct Slice {
    from: DateTime<Utc>,
    end: DateTime<Utc>,
    pages: mpsc::Receiver<SlicePage>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Slice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
pub struct Wad {
    client: Arc<TableClient>,
    table: String,
    late_arrival: TimeDelta,
    poll_interval: TimeDelta,
    page_size: usize,
    parallel: usize,
    cursor: WadCursor,
    running: Option<Running>,
    /// Slices of a backlog being read ahead, in order; the cursor is inside the first.
    slices: VecDeque<Slice>,
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
            page_size: batch_size.clamp(1, MAX_PAGE),
            parallel: config.parallel_queries.max(1),
            cursor,
            running: None,
            slices: VecDeque::new(),
            metrics,
        })
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        if !self.slices.is_empty() {
            return self.next_of_slices().await;
        }
        let end = match self.cursor.window_end {
            Some(end) => end,
            None if self.cursor.scanning => self.cursor.from,
            None => {
                let end = Utc::now() - self.late_arrival;
                let behind = end - self.cursor.from;
                if behind < self.poll_interval {
                    return Ok(Fetch::CaughtUp);
                }
                if self.parallel > 1 && behind > self.poll_interval * 2 {
                    self.read_ahead(end);
                    return self.next_of_slices().await;
                }
                self.cursor.window_end = Some(end);
                end
            }
        };
        // A query keeps its filter while its continuation is followed; a new one starts from the
        // cursor.
        let filter = self.running.is_none().then(|| {
            let from = (!self.cursor.scanning).then_some(self.cursor.from);
            filter(from, end, self.cursor.after.as_ref())
        });
        let running = self.running.get_or_insert_with(|| Running {
            filter: filter.unwrap_or_default(),
            continuation: None,
        });
        let (rows, next) = self
            .client
            .query(
                &self.table,
                &running.filter,
                self.page_size,
                running.continuation.as_ref(),
                rows_of_page,
            )
            .await?;
        let done = match next {
            Some(next) => {
                running.continuation = Some(next);
                false
            }
            None => {
                self.running = None;
                true
            }
        };
        self.batch(rows, done.then_some(end))
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
            let (tx, pages) = mpsc::channel(1);
            let task = tokio::spawn(read_slice(
                self.client.clone(),
                self.table.clone(),
                filter(Some(start), stop, None),
                self.page_size,
                tx,
                self.metrics.clone(),
            ));
            self.slices.push_back(Slice {
                from: start,
                end: stop,
                pages,
                task,
            });
        }
    }

    /// The next page of the first slice; when it is done, an empty batch that moves the cursor
    /// to the next one. On an error the slices are dropped: the cursor says where the first one
    /// stands, and the next call resumes it with one query.
    async fn next_of_slices(&mut self) -> Result<Fetch, SourceError> {
        let Some(slice) = self.slices.front_mut() else {
            return Ok(Fetch::CaughtUp);
        };
        if self.cursor.window_end.is_none() {
            self.cursor.from = slice.from;
            self.cursor.window_end = Some(slice.end);
        }
        match slice.pages.recv().await {
            Some(Ok(rows)) => self.batch(rows, None),
            Some(Err(e)) => {
                self.slices.clear();
                Err(e.into())
            }
            None => {
                let end = slice.end;
                self.slices.pop_front();
                self.batch(Vec::new(), Some(end))
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

/// Reads one slice's query to its end, handing over each page; stops at the first error (handed
/// over too) or when nobody takes the pages any more.
async fn read_slice(
    client: Arc<TableClient>,
    table: String,
    filter: String,
    page_size: usize,
    pages: mpsc::Sender<SlicePage>,
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
        let page = client
            .query(
                &table,
                &filter,
                page_size,
                continuation.as_ref(),
                rows_of_page,
            )
            .await;
        let next = match page {
            Ok((rows, next)) => pages.send(Ok(rows)).await.ok().and(next),
            Err(e) => {
                let _ = pages.send(Err(e)).await;
                None
            }
        };
        match next {
            Some(next) => continuation = Some(next),
            None => break,
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
