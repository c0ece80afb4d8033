//! The `wad` source: rows of a VM diagnostics table (WADWindowsEventLogsTable, WADLogsTable, …).
//!
//! Rows are read in windows of the server's `Timestamp` (when the storage service stored the row),
//! never of the event's own time or of the PartitionKey minute: an agent that uploads a minute late
//! writes into an old partition, but its rows carry a new `Timestamp` and land in a window not yet
//! read. A window ends `lateArrival` behind now so writes still in flight are in the next one.
//! Inside a window the table answers in (PartitionKey, RowKey) order, and the cursor keeps the last
//! row delivered, so a restart resumes mid-window without re-reading it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::AzureClient;
use crate::azure::storage;
use crate::azure::table::{Continuation, TableClient};
use crate::config::{StartAt, WadConfig};
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::normalise::{RawRecord, WadRow};

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
        let last = records.last().and_then(|r| r.wad_columns.as_deref());
        if let Some((partition, row)) = last.map(WadRow::keys) {
            self.cursor.after = Some((partition.to_owned(), row.to_owned()));
        }
        if let Some(end) = window_done {
            // The window (or the first scan) is complete: the next window starts where it ended.
            self.cursor = WadCursor {
                from: end,
                window_end: None,
                after: None,
                scanning: false,
            };
        }
        let cursor = serde_json::to_value(&self.cursor)
            .map_err(|e| SourceError::Cursor(format!("wad cursor: {e}")))?;
        Ok(Fetch::Batch(Batch {
            records,
            malformed,
            cursor,
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

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}

/// An OData string literal's content: a quote is doubled.
fn odata_string(text: &str) -> String {
    text.replace('\'', "''")
}

/// A row of a page, typed, with the columns the normaliser reads; or refused, with why, for the
/// dead-letter file.
#[derive(Debug)]
enum Row {
    Typed(Box<RawValue>, Box<WadRow<'static>>),
    Refused { payload: String, reason: String },
}

/// Reads a page (`{"value": [rows…], …}`) in one pass, typing each row as it goes: the row's
/// annotations (`EventTickCount@odata.type: Edm.Int64` turns the string Table storage sends for
/// Int64 into a number) are applied and the OData bookkeeping dropped, so outputs get the row's own
/// columns, correctly typed and in the table's order. Column values are copied as raw JSON, never
/// parsed into a tree: this runs for every row.
fn rows_of_page(body: &[u8]) -> Result<Vec<Row>, String> {
    // Validated as UTF-8 once, so that the parser does not check every column value again.
    let body = std::str::from_utf8(body).map_err(|e| format!("the page is not UTF-8: {e}"))?;
    let mut rows = Vec::new();
    serde_json::Deserializer::from_str(body)
        .deserialize_map(PageVisitor { rows: &mut rows })
        .map_err(|e| e.to_string())?;
    Ok(rows)
}

struct PageVisitor<'r> {
    rows: &'r mut Vec<Row>,
}

impl<'de> Visitor<'de> for PageVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a page of table rows")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            if key == "value" {
                map.next_value_seed(Rows {
                    rows: &mut *self.rows,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Rows<'r> {
    rows: &'r mut Vec<Row>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of table rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element_seed(RowSeed)? {
            self.rows.push(row);
        }
        Ok(())
    }
}

struct RowSeed;

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = Row;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed {
    type Value = Row;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of table columns")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut columns: Vec<(Cow<'de, str>, Column<'de>)> = Vec::with_capacity(24);
        let mut decoded = WadRow::default();
        let (mut partition, mut row) = (false, false);
        let mut problem = None;
        let mut int64_next: Option<Cow<'de, str>> = None;
        // Table storage writes a column's annotation just before the column.
        while let Some(column) = map.next_key_seed(Key)? {
            let value: &'de RawValue = map.next_value()?;
            if let Some(length) = column.strip_suffix("@odata.type").map(str::len) {
                if value.get() == "\"Edm.Int64\"" {
                    int64_next = Some(match column {
                        Cow::Borrowed(name) => Cow::Borrowed(&name[..length]),
                        Cow::Owned(name) => Cow::Owned(name[..length].to_owned()),
                    });
                }
                continue;
            }
            if column.starts_with("odata.") {
                continue;
            }
            let text = value.get();
            partition |= column == "PartitionKey";
            row |= column == "RowKey";
            if let Err(e) = decoded.take_column(&column, value) {
                problem.get_or_insert(format!("column {column}: {e}"));
            }
            let int64 = int64_next.take().is_some_and(|name| name == column);
            let value = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(digits) if int64 => match digits.parse::<i64>() {
                    Ok(number) => Column::Int64(number),
                    Err(_) => {
                        problem.get_or_insert(format!(
                            "column {column} is typed Edm.Int64 but holds {text}"
                        ));
                        Column::Raw(value)
                    }
                },
                _ => Column::Raw(value),
            };
            columns.push((column, value));
        }
        if !partition {
            problem.get_or_insert_with(|| "the row has no PartitionKey".into());
        } else if !row {
            problem.get_or_insert_with(|| "the row has no RowKey".into());
        }
        // Written through serde_json's serializer: every piece is valid JSON already (raw values
        // from the page, escaped names, integers), so the row is not scanned a second time.
        let typed = serde_json::value::to_raw_value(&Columns(&columns))
            .map_err(serde::de::Error::custom)?;
        Ok(match problem {
            None => Row::Typed(typed, Box::new(decoded)),
            Some(reason) => Row::Refused {
                payload: typed.get().to_owned(),
                reason,
            },
        })
    }
}

/// A column value as it goes out: raw JSON from the page, or an Int64 the page sent as a string.
enum Column<'de> {
    Raw(&'de RawValue),
    Int64(i64),
}

/// A row's columns, in the table's order, written as one JSON object.
struct Columns<'c, 'de>(&'c [(Cow<'de, str>, Column<'de>)]);

impl Serialize for Columns<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match value {
                Column::Raw(raw) => map.serialize_entry(name, raw)?,
                Column::Int64(number) => map.serialize_entry(name, number)?,
            }
        }
        map.end()
    }
}

/// A map key, borrowed from the page unless it holds an escape. (`Cow<str>` itself always copies.)
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a column name")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::{NormaliseContext, normalise};
    use serde_json::Value;

    fn page(rows: &str) -> Vec<Row> {
        rows_of_page(format!(r#"{{"odata.metadata":"m","value":[{rows}]}}"#).as_bytes())
            .expect("page")
    }

    #[test]
    fn int64_columns_get_their_type_and_odata_bookkeeping_goes() {
        let rows = page(
            r#"{"odata.etag":"W/\"x\"","PartitionKey":"0637000000000000000","RowKey":"r1","Timestamp@odata.type":"Edm.DateTime","Timestamp":"2026-11-22T06:00:00.1234567Z","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"638675000000000000","EventId":4625}"#,
        );
        let Some(Row::Typed(row, columns)) = rows.into_iter().next() else {
            panic!("one typed row")
        };
        assert_eq!(columns.keys(), ("0637000000000000000", "r1"));
        assert_eq!(
            row.get(),
            r#"{"PartitionKey":"0637000000000000000","RowKey":"r1","Timestamp":"2026-11-22T06:00:00.1234567Z","EventTickCount":638675000000000000,"EventId":4625}"#
        );
        let value: Value = serde_json::from_str(row.get()).expect("json");
        assert_eq!(value["EventTickCount"], Value::from(638675000000000000_i64));
    }

    #[test]
    fn a_row_that_breaks_its_own_types_is_refused_with_the_reason_and_the_page_goes_on() {
        let rows = page(
            r#"{"PartitionKey":"p","RowKey":"r","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"soon"},{"RowKey":"r2"},{"PartitionKey":"p","RowKey":"r3"}"#,
        );
        assert_eq!(rows.len(), 3);
        match &rows[0] {
            Row::Refused { payload, reason } => {
                assert!(reason.contains("EventTickCount"), "{reason}");
                assert!(payload.contains("soon"), "{payload}");
            }
            other => panic!("refused, not {other:?}"),
        }
        assert!(matches!(&rows[1], Row::Refused { reason, .. } if reason.contains("PartitionKey")));
        assert!(matches!(&rows[2], Row::Typed(_, columns) if columns.keys().1 == "r3"));
        assert!(rows_of_page(br#"{"value":[{"PartitionKey":"#).is_err());
    }

    #[test]
    fn columns_decoded_while_reading_make_the_event_the_normaliser_would_make() {
        let page = page(
            r#"{"PartitionKey":"0637","RowKey":"r\"1","Timestamp":"2026-11-22T06:00:00.1234567Z","PreciseTimeStamp":"2026-11-22T05:59:59.5Z","Level":"2","EventId":4625,"Channel":"Security","ProviderName":"Microsoft-Windows-Security-Auditing","Description":"failed\r\nlogon \u00e9","RoleInstance":"web_0","Other":[1]}"#,
        );
        let Some(Row::Typed(raw, columns)) = page.into_iter().next() else {
            panic!("one typed row")
        };
        let ctx = NormaliseContext {
            source_name: "wad".into(),
            subscription_id: Some("sub".into()),
        };
        let record = |wad_columns| RawRecord {
            kind: EventKind::Wad,
            raw: raw.clone(),
            id_hint: None,
            wad_columns,
        };
        let decoded = normalise(record(Some(columns)), &ctx).expect("decoded while read");
        let parsed = normalise(record(None), &ctx).expect("parsed by the normaliser");
        assert_eq!(format!("{decoded:?}"), format!("{parsed:?}"));
        assert_eq!(decoded.id, "0637|r\"1");
        assert_eq!(decoded.message, "failed\r\nlogon é");
        assert_eq!(decoded.severity, crate::event::Severity::Error);
        assert_eq!(decoded.host.as_deref(), Some("web_0"));
    }

    #[test]
    fn quotes_in_keys_are_escaped_in_the_resume_filter() {
        assert_eq!(odata_string("it's"), "it''s");
    }
}
