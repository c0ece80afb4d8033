//! The `wad` source: rows of a VM diagnostics table (WADWindowsEventLogsTable, WADLogsTable, …).
//!
//! Rows are read in windows of the server's `Timestamp` (when the storage service stored the row),
//! never of the event's own time or of the PartitionKey minute: an agent that uploads a minute late
//! writes into an old partition, but its rows carry a new `Timestamp` and land in a window not yet
//! read. A window ends `lateArrival` behind now so writes still in flight are in the next one.
//! Inside a window the table answers in (PartitionKey, RowKey) order, and the cursor keeps the last
//! row delivered, so a restart resumes mid-window without re-reading it.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::AzureClient;
use crate::azure::storage;
use crate::azure::table::{Continuation, TableClient};
use crate::config::{StartAt, WadConfig};
use crate::event::EventKind;
use crate::normalise::RawRecord;

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

#[derive(Debug)]
pub struct Wad {
    client: TableClient,
    table: String,
    late_arrival: TimeDelta,
    poll_interval: TimeDelta,
    page_size: usize,
    cursor: WadCursor,
    running: Option<Running>,
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
        let cursor = match cursor {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| SourceError::Cursor(format!("wad cursor: {e}")))?,
            None => {
                let now = Utc::now();
                let late = TimeDelta::from_std(config.late_arrival).unwrap_or(TimeDelta::MAX);
                let (from, scanning) = match config.start_at {
                    StartAt::Now => (now, false),
                    StartAt::Earliest => (now - late, true),
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
        Ok(Wad {
            client: TableClient::new(client, &endpoint, &config.account, auth),
            table: config.table.clone(),
            late_arrival: TimeDelta::from_std(config.late_arrival).unwrap_or(TimeDelta::MAX),
            poll_interval: TimeDelta::from_std(poll_interval).unwrap_or(TimeDelta::MAX),
            page_size: batch_size.clamp(1, MAX_PAGE),
            cursor,
            running: None,
        })
    }

    fn filter(&self, end: DateTime<Utc>) -> String {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut clauses = Vec::new();
        if !self.cursor.scanning {
            clauses.push(format!(
                "Timestamp ge datetime'{}' and Timestamp lt datetime'{}'",
                time(self.cursor.from),
                time(end)
            ));
        }
        if let Some((partition, row)) = &self.cursor.after {
            let (p, r) = (odata_string(partition), odata_string(row));
            clauses.push(format!(
                "(PartitionKey gt '{p}' or (PartitionKey eq '{p}' and RowKey gt '{r}'))"
            ));
        }
        clauses.join(" and ")
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        let end = match self.cursor.window_end {
            Some(end) => end,
            None if self.cursor.scanning => self.cursor.from,
            None => {
                let end = Utc::now() - self.late_arrival;
                if end - self.cursor.from < self.poll_interval {
                    return Ok(Fetch::CaughtUp);
                }
                self.cursor.window_end = Some(end);
                end
            }
        };
        if self.running.is_none() {
            self.running = Some(Running {
                filter: self.filter(end),
                continuation: None,
            });
        }
        let (filter, continuation) = match &self.running {
            Some(running) => (running.filter.clone(), running.continuation.clone()),
            None => return Ok(Fetch::CaughtUp),
        };
        let mut records = Vec::new();
        let mut malformed = Vec::new();
        let mut last = None;
        let table = &self.table;
        let next = self
            .client
            .query(
                table,
                &filter,
                self.page_size,
                continuation.as_ref(),
                |raw| match typed_row(raw) {
                    Ok((row, keys)) => {
                        last = Some(keys);
                        records.push(RawRecord {
                            kind: EventKind::Wad,
                            raw: row,
                            id_hint: None,
                        });
                    }
                    Err(reason) => malformed.push(Malformed {
                        origin: format!("{table} row"),
                        reason,
                        payload: raw.get().to_owned(),
                    }),
                },
            )
            .await?;
        if last.is_some() {
            self.cursor.after = last;
        }
        match next {
            Some(next) => {
                if let Some(running) = self.running.as_mut() {
                    running.continuation = Some(next);
                }
            }
            None => {
                // The window (or the first scan) is complete: the next window starts where it ended.
                self.cursor = WadCursor {
                    from: end,
                    window_end: None,
                    after: None,
                    scanning: false,
                };
                self.running = None;
            }
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

/// Applies the row's type annotations (`EventTickCount@odata.type: Edm.Int64` turns the string
/// Table storage sends for Int64 into a number) and drops the OData bookkeeping, so outputs get the
/// row's own columns, correctly typed and in the table's order. Answers the row and its
/// (PartitionKey, RowKey).
///
/// One streaming pass that copies values as raw JSON: this runs for every row. Table storage writes
/// a column's annotation just before the column.
fn typed_row(raw: &RawValue) -> Result<(Box<RawValue>, (String, String)), String> {
    let mut out = String::with_capacity(raw.get().len());
    let visitor = RowVisitor { out: &mut out };
    let keys = serde_json::Deserializer::from_str(raw.get())
        .deserialize_map(visitor)
        .map_err(|e| format!("a table row is not a JSON object of columns: {e}"))?;
    let raw = RawValue::from_string(out).map_err(|e| e.to_string())?;
    Ok((raw, keys))
}

struct RowVisitor<'o> {
    out: &'o mut String,
}

impl<'de> serde::de::Visitor<'de> for RowVisitor<'_> {
    type Value = (String, String);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of table columns")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let (mut partition, mut row) = (None, None);
        let mut int64_next: Option<&'de str> = None;
        self.out.push('{');
        // Property names are identifiers, so they borrow (a name with a JSON escape is refused).
        while let Some(column) = map.next_key::<&'de str>()? {
            let value: &'de RawValue = map.next_value()?;
            if let Some(annotated) = column.strip_suffix("@odata.type") {
                if value.get() == "\"Edm.Int64\"" {
                    int64_next = Some(annotated);
                }
                continue;
            }
            if column.starts_with("odata.") {
                continue;
            }
            if self.out.len() > 1 {
                self.out.push(',');
            }
            self.out.push('"');
            self.out.push_str(column);
            self.out.push_str("\":");
            let text = value.get();
            let int64 = int64_next.take() == Some(column);
            match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(digits) if int64 => {
                    digits.parse::<i64>().map_err(|_| {
                        A::Error::custom(format!(
                            "column {column} is typed Edm.Int64 but holds {text}"
                        ))
                    })?;
                    self.out.push_str(digits);
                }
                _ => self.out.push_str(text),
            }
            match column {
                "PartitionKey" => partition = Some(serde_json::from_str::<String>(text)),
                "RowKey" => row = Some(serde_json::from_str::<String>(text)),
                _ => {}
            }
        }
        self.out.push('}');
        let key = |found: Option<Result<String, serde_json::Error>>, name: &str| match found {
            Some(Ok(key)) => Ok(key),
            _ => Err(A::Error::custom(format!("the row has no {name}"))),
        };
        Ok((key(partition, "PartitionKey")?, key(row, "RowKey")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn int64_columns_get_their_type_and_odata_bookkeeping_goes() {
        let raw = RawValue::from_string(
            r#"{"odata.etag":"W/\"x\"","PartitionKey":"0637000000000000000","RowKey":"r1","Timestamp@odata.type":"Edm.DateTime","Timestamp":"2026-11-22T06:00:00.1234567Z","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"638675000000000000","EventId":4625}"#
                .into(),
        )
        .expect("json");
        let (row, keys) = typed_row(&raw).expect("typed");
        assert_eq!(keys, ("0637000000000000000".into(), "r1".into()));
        let row: Value = serde_json::from_str(row.get()).expect("json");
        assert_eq!(row["EventTickCount"], Value::from(638675000000000000_i64));
        assert_eq!(row["Timestamp"], "2026-11-22T06:00:00.1234567Z");
        assert!(row.get("odata.etag").is_none());
        assert!(row.get("EventTickCount@odata.type").is_none());
    }

    #[test]
    fn a_row_that_breaks_its_own_types_is_refused_with_the_reason() {
        let raw = RawValue::from_string(
            r#"{"PartitionKey":"p","RowKey":"r","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"soon"}"#
                .into(),
        )
        .expect("json");
        let error = typed_row(&raw).expect_err("refused");
        assert!(error.contains("EventTickCount"), "{error}");
        let no_keys = RawValue::from_string(r#"{"RowKey":"r"}"#.into()).expect("json");
        assert!(typed_row(&no_keys).is_err());
    }

    #[test]
    fn quotes_in_keys_are_escaped_in_the_resume_filter() {
        assert_eq!(odata_string("it's"), "it''s");
    }
}
