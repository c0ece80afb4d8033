//! The `diagnostic_logs` source: resource logs that diagnostic settings archive to a storage account,
//! in containers `insights-logs-<category>` (and `insights-activity-logs`), one append blob per
//! resource and hour: `resourceId=/SUBSCRIPTIONS/…/y=2026/m=11/d=22/h=06/m=00/PT1H.json`.
//!
//! Each poll lists the containers page by page (memory does not grow with the number of blobs) and
//! reads what each blob gained since the last poll, by byte offset: an hour's blob keeps growing
//! after its hour ends. A blob's offset is kept until its hour plus `lateArrival` has passed; after
//! that it is final, and a completed scan marks every hour before as done. A record's id is its blob
//! and byte offset, so a re-read after a crash is recognised.

pub mod record;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::checkpoint::Offsets;
use crate::json::RawJson;

use super::{Batch, Fetch, Malformed, Source, SourceError};
use crate::azure::AzureClient;
use crate::azure::blob::{BlobClient, BlobItem};
use crate::azure::storage;
use crate::config::{DiagnosticLogsConfig, StartAt};
use crate::event::EventKind;
use crate::normalise::RawRecord;

/// The most a single read asks for; a longer line makes the read grow until it holds the line.
const CHUNK: u64 = 4 << 20;
const MAX_LINE: u64 = 64 << 20;

/// Where the archive has been read to, stored in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiagCursor {
    /// Blobs of hours before this are final and were read to their end.
    settled_before: Option<DateTime<Utc>>,
    /// In the scan in progress, every blob up to this (container, name) was handled.
    done_through: Option<(String, String)>,
    /// Bytes delivered from each blob that may still grow: "container/name" → offset. Kept beside
    /// the checkpoint (see [`Batch::offsets`]), never in the cursor written: thousands of open
    /// blobs would make it hundreds of KiB, rewritten at every commit. Read back at a start.
    #[serde(default, skip_serializing)]
    offsets: BTreeMap<String, u64>,
    /// The first scan after `startAt: Now` skips what the blobs already hold.
    skip_existing: bool,
    /// When the scan in progress began.
    scan_started: Option<DateTime<Utc>>,
}

/// A scan: containers, then blob-name prefixes, then listing pages.
#[derive(Debug, Default)]
struct Scan {
    containers: Vec<String>,
    container: usize,
    prefix: usize,
    marker: Option<String>,
    listed: bool,
    page: VecDeque<BlobItem>,
}

/// A blob being read.
#[derive(Debug)]
struct Reading {
    container: String,
    blob: String,
    hour: Option<DateTime<Utc>>,
    next: u64,
    length: u64,
}

#[derive(Debug)]
pub struct DiagnosticLogs {
    client: BlobClient,
    config: DiagnosticLogsConfig,
    prefixes: Vec<String>,
    late_arrival: TimeDelta,
    cursor: DiagCursor,
    scan: Option<Scan>,
    reading: Option<Reading>,
    /// Offsets changed since the last batch, handed over with the next one.
    unsaved: Offsets,
}

impl DiagnosticLogs {
    pub fn new(
        config: &DiagnosticLogsConfig,
        client: Arc<AzureClient>,
        cursor: Option<serde_json::Value>,
    ) -> Result<DiagnosticLogs, SourceError> {
        let (endpoint, auth) = storage::Account {
            name: &config.account,
            endpoint: config.endpoint.as_deref(),
            key_file: config.account_key_file.as_deref(),
            sas_file: config.sas_token_file.as_deref(),
        }
        .connect("blob", &client.endpoints().storage_suffix)
        .map_err(SourceError::Setup)?;
        let cursor = match cursor {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| SourceError::Cursor(format!("diagnosticLogs cursor: {e}")))?,
            None => DiagCursor {
                settled_before: match config.start_at {
                    StartAt::Now => Some(hour_of(Utc::now())),
                    StartAt::Earliest => None,
                    StartAt::Time(t) => Some(hour_of(t)),
                },
                skip_existing: config.start_at == StartAt::Now,
                ..DiagCursor::default()
            },
        };
        // Azure writes resource ids in upper case.
        let prefixes = match (&config.subscriptions[..], &config.resource_groups[..]) {
            ([], _) => vec!["resourceId=/".to_owned()],
            (subs, []) => subs
                .iter()
                .map(|s| format!("resourceId=/SUBSCRIPTIONS/{}/", s.to_uppercase()))
                .collect(),
            (subs, groups) => subs
                .iter()
                .flat_map(|s| {
                    groups.iter().map(move |g| {
                        format!(
                            "resourceId=/SUBSCRIPTIONS/{}/RESOURCEGROUPS/{}/",
                            s.to_uppercase(),
                            g.to_uppercase()
                        )
                    })
                })
                .collect(),
        };
        // Offsets read back at a start are handed over again with the first batch: a checkpoint
        // written before they moved beside it still has them in its cursor only.
        let unsaved = cursor
            .offsets
            .iter()
            .map(|(k, v)| (k.clone(), Some(*v)))
            .collect();
        Ok(DiagnosticLogs {
            client: BlobClient::new(client, &endpoint, &config.account, auth),
            config: config.clone(),
            prefixes,
            late_arrival: TimeDelta::from_std(config.late_arrival).unwrap_or(TimeDelta::MAX),
            cursor,
            scan: None,
            reading: None,
            unsaved,
        })
    }

    async fn containers(&self) -> Result<Vec<String>, SourceError> {
        let mut containers = if self.config.categories.is_empty() {
            self.client.list_containers("insights-logs-").await?
        } else {
            self.config
                .categories
                .iter()
                .map(|c| format!("insights-logs-{}", c.to_lowercase()))
                .collect()
        };
        if self.config.activity_logs {
            containers.push("insights-activity-logs".to_owned());
        }
        containers.sort();
        Ok(containers)
    }

    /// A batch of `records`, with the cursor and the offsets changed since the last one.
    fn batch(
        &mut self,
        records: Vec<RawRecord>,
        malformed: Vec<Malformed>,
    ) -> Result<Fetch, SourceError> {
        let cursor = serde_json::to_value(&self.cursor)
            .map_err(|e| SourceError::Cursor(format!("diagnosticLogs cursor: {e}")))?;
        Ok(Fetch::Batch(Batch {
            records,
            malformed,
            cursor,
            offsets: std::mem::take(&mut self.unsaved),
        }))
    }

    /// Sets (or with None forgets) a blob's offset.
    fn set_offset(&mut self, key: String, offset: Option<u64>) {
        match offset {
            Some(offset) => self.cursor.offsets.insert(key.clone(), offset),
            None => self.cursor.offsets.remove(&key),
        };
        self.unsaved.insert(key, offset);
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        loop {
            if self.reading.is_some() {
                return self.read().await;
            }
            if self.scan.is_none() {
                let containers = self.containers().await?;
                self.cursor.scan_started.get_or_insert_with(Utc::now);
                self.scan = Some(Scan {
                    containers,
                    ..Scan::default()
                });
            }
            let Some(scan) = self.scan.as_mut() else {
                continue;
            };
            if let Some(blob) = scan.page.pop_front() {
                let container = scan.containers[scan.container].clone();
                self.consider(container, blob);
                continue;
            }
            if scan.container >= scan.containers.len() {
                return Ok(self.finish_scan());
            }
            if !scan.listed || scan.marker.is_some() {
                let container = &scan.containers[scan.container];
                let listed = self
                    .client
                    .list_blobs(
                        container,
                        &self.prefixes[scan.prefix],
                        scan.marker.as_deref(),
                    )
                    .await;
                let page = match listed {
                    Ok(page) => page,
                    // A category with nothing archived yet has no container.
                    Err(crate::azure::ApiError::Status { status: 404, .. }) => Default::default(),
                    Err(e) => return Err(e.into()),
                };
                scan.listed = true;
                scan.marker = page.next_marker;
                scan.page = page.blobs.into();
                continue;
            }
            scan.listed = false;
            scan.prefix += 1;
            if scan.prefix >= self.prefixes.len() {
                scan.prefix = 0;
                scan.container += 1;
            }
        }
    }

    /// Decides whether a listed blob has anything new to read.
    fn consider(&mut self, container: String, blob: BlobItem) {
        let hour = hour_in_name(&blob.name);
        if let (Some(hour), Some(settled)) = (hour, self.cursor.settled_before)
            && hour < settled
        {
            return;
        }
        let position = (container.clone(), blob.name.clone());
        if self
            .cursor
            .done_through
            .as_ref()
            .is_some_and(|done| position <= *done)
        {
            return;
        }
        let key = format!("{container}/{}", blob.name);
        if self.cursor.skip_existing {
            self.set_offset(key, Some(blob.length));
            self.cursor.done_through = Some(position);
            return;
        }
        let next = self.cursor.offsets.get(&key).copied().unwrap_or(0);
        if blob.length > next {
            self.reading = Some(Reading {
                container,
                blob: blob.name,
                hour,
                next,
                length: blob.length,
            });
        } else {
            self.cursor.done_through = Some(position);
        }
    }

    /// Reads the next chunk of the blob being read and hands over its complete lines.
    async fn read(&mut self) -> Result<Fetch, SourceError> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(Fetch::CaughtUp);
        };
        let now = Utc::now();
        let open = reading
            .hour
            .is_none_or(|h| h + TimeDelta::hours(1) + self.late_arrival > now);
        let mut want = CHUNK;
        let (bytes, consumed) = loop {
            let end = (reading.next + want).min(reading.length);
            let bytes = self
                .client
                .read(&reading.container, &reading.blob, reading.next, end)
                .await?;
            let at_end = end >= reading.length;
            match bytes.iter().rposition(|b| *b == b'\n') {
                Some(last) => break (bytes, last + 1),
                // A final blob's last line needs no newline; an open blob's may still be written.
                None if at_end && !open => {
                    let len = bytes.len();
                    break (bytes, len);
                }
                None if at_end || want >= MAX_LINE => break (bytes, 0),
                None => want *= 4,
            }
        };
        let origin = format!("{}/{}", reading.container, reading.blob);
        let mut records = Vec::new();
        let mut malformed = Vec::new();
        if reading.next == 0 && looks_like_records_object(&bytes) {
            // The format Azure wrote before JSON lines: one {"records": [...]} object per blob,
            // complete only once the blob is final.
            if !open {
                let whole = if bytes.len() as u64 >= reading.length {
                    bytes
                } else {
                    self.client
                        .read(&reading.container, &reading.blob, 0, reading.length)
                        .await?
                };
                records_object(&whole, &origin, &mut records, &mut malformed);
                reading.next = reading.length;
            } else {
                // Not final yet: left for a later scan, which will find it whole.
                self.reading = None;
                return self.batch(records, malformed);
            }
        } else {
            lines(
                &bytes[..consumed],
                reading.next,
                &origin,
                &mut records,
                &mut malformed,
            );
            reading.next += consumed as u64;
        }
        let finished = reading.next >= reading.length || consumed == 0;
        let next = reading.next;
        if finished {
            self.cursor.done_through = Some((reading.container.clone(), reading.blob.clone()));
            self.reading = None;
        }
        // A final blob read to its end needs no offset: its hour will be settled.
        self.set_offset(origin, (!finished || open).then_some(next));
        self.batch(records, malformed)
    }

    /// A scan is complete: hours whose blobs were final when it began are done.
    fn finish_scan(&mut self) -> Fetch {
        let started = self.cursor.scan_started.take().unwrap_or_else(Utc::now);
        let settled = hour_of(started - self.late_arrival);
        self.cursor.settled_before = Some(
            self.cursor
                .settled_before
                .map_or(settled, |s| s.max(settled)),
        );
        // Blobs of settled hours are final and were read to their end.
        let done: Vec<String> = self
            .cursor
            .offsets
            .keys()
            .filter(|key| hour_in_name(key).is_some_and(|h| h < settled))
            .cloned()
            .collect();
        for key in done {
            self.set_offset(key, None);
        }
        self.cursor.done_through = None;
        self.cursor.skip_existing = false;
        self.scan = None;
        Fetch::CaughtUp
    }
}

impl Source for DiagnosticLogs {
    const KIND: &'static str = "diagnosticLogs";

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The hour in a blob name's `y=YYYY/m=MM/d=DD/h=HH` segments.
fn hour_in_name(name: &str) -> Option<DateTime<Utc>> {
    let field = |key: &str| -> Option<u32> {
        let start = name.find(&format!("/{key}="))? + key.len() + 2;
        name[start..].split('/').next()?.parse().ok()
    };
    let date = NaiveDate::from_ymd_opt(field("y")? as i32, field("m")?, field("d")?)?;
    Some(date.and_hms_opt(field("h")?, 0, 0)?.and_utc())
}

fn looks_like_records_object(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &bytes[start..bytes.len().min(start + 64)];
    let compact: Vec<u8> = head
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact.starts_with(b"{\"records\":[")
}

/// Every complete line of `bytes` (which start at byte `offset` of the blob) as a record; lines that
/// are not JSON objects go to the dead-letter file with their blob and offset.
fn lines(
    bytes: &[u8],
    offset: u64,
    origin: &str,
    records: &mut Vec<RawRecord>,
    malformed: &mut Vec<Malformed>,
) {
    let mut at = 0usize;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let start = offset + at as u64;
        at += line.len();
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']).trim();
        if text.is_empty() {
            continue;
        }
        let id = format!("{origin}@{start}");
        match RawJson::parse(text.to_owned()) {
            Ok(raw) if text.starts_with('{') => records.push(RawRecord {
                kind: EventKind::DiagnosticLog,
                raw,
                id_hint: Some(id),
                wad_columns: None,
                schema: crate::normalise::Schema::Streamed,
            }),
            Ok(_) => malformed.push(Malformed {
                origin: id,
                reason: "the line is JSON but not an object".into(),
                payload: text.to_owned(),
            }),
            Err(e) => malformed.push(Malformed {
                origin: id,
                reason: format!("the line is not JSON: {e}"),
                payload: text.to_owned(),
            }),
        }
    }
}

/// The records of an old-format blob, `{"records": [...]}`.
fn records_object(
    bytes: &[u8],
    origin: &str,
    records: &mut Vec<RawRecord>,
    malformed: &mut Vec<Malformed>,
) {
    #[derive(Deserialize)]
    struct Records<'a> {
        #[serde(borrow)]
        records: Vec<&'a RawValue>,
    }
    match serde_json::from_slice::<Records>(bytes) {
        Ok(parsed) => {
            for (i, raw) in parsed.records.into_iter().enumerate() {
                records.push(RawRecord {
                    kind: EventKind::DiagnosticLog,
                    raw: raw.into(),
                    id_hint: Some(format!("{origin}#{i}")),
                    wad_columns: None,
                    schema: crate::normalise::Schema::Streamed,
                });
            }
        }
        Err(e) => malformed.push(Malformed {
            origin: origin.to_owned(),
            reason: format!("the blob is not a {{\"records\": [...]}} object: {e}"),
            payload: String::from_utf8_lossy(bytes).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_comes_from_the_blob_name() {
        let name = "resourceId=/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV/y=2026/m=11/d=22/h=06/m=00/PT1H.json";
        assert_eq!(
            hour_in_name(name),
            DateTime::parse_from_rfc3339("2026-11-22T06:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(hour_in_name("odd/name.json"), None);
    }

    #[test]
    fn lines_carry_blob_and_offset_and_bad_ones_are_kept_for_the_dead_letter_file() {
        let text = b"{\"a\":1}\r\n{'single': 'quotes'}\n\n{\"b\":2}\n";
        let (mut records, mut malformed) = (Vec::new(), Vec::new());
        lines(text, 100, "c/blob", &mut records, &mut malformed);
        let ids: Vec<_> = records.iter().filter_map(|r| r.id_hint.clone()).collect();
        assert_eq!(ids, ["c/blob@100", "c/blob@131"]);
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].origin, "c/blob@109");
        assert!(malformed[0].payload.contains("single"));
    }

    #[test]
    fn the_old_records_object_format_is_read_whole() {
        assert!(looks_like_records_object(
            b" { \"records\" : [ {\"a\":1} ] }"
        ));
        assert!(!looks_like_records_object(b"{\"time\":\"x\"}\n"));
        let (mut records, mut malformed) = (Vec::new(), Vec::new());
        records_object(
            b"{\"records\":[{\"a\":1},{\"b\":2}]}",
            "c/b",
            &mut records,
            &mut malformed,
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].id_hint.as_deref(), Some("c/b#1"));
        assert!(malformed.is_empty());
    }
}
