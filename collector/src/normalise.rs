//! Turning raw Azure records into [`Event`]s.
//!
//! Each source hands over records exactly as Azure sent them. Parsing reads only the fields the
//! outputs need, borrowing from the record, and keeps the record itself intact. A record that does not
//! have the shape its API promises is an error for the caller to dead-letter, never a panic.
//!
//! Each API's schema and normaliser sit beside the source that reads it (`source::<name>::record`
//! and the like); here is what they share.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::event::{Event, EventKind};
use crate::json::{RawJson, compact_json};
use crate::source::wad::row::WadColumns;
use crate::source::{activity_log, diagnostic_logs, entra_audit, security_alerts, wad};

/// What a source knows about all of its records.
#[derive(Debug, Clone)]
pub struct NormaliseContext {
    pub source_name: Arc<str>,
    /// The subscription the source reads; used where a record does not carry its own.
    pub subscription_id: Option<String>,
}

/// A record as a source fetched it.
#[derive(Debug)]
pub struct RawRecord {
    pub kind: EventKind,
    pub raw: RawJson,
    /// The id for records that carry none of their own (resource logs: blob name + byte offset).
    pub id_hint: Option<String>,
    /// Where in `raw` a WAD row's columns the normaliser reads are, noted by the `wad` source while
    /// it wrote the row, so that the row is not parsed a second time. Without them the row is
    /// parsed from `raw`.
    pub wad_columns: Option<Box<WadColumns>>,
    pub schema: Schema,
}

/// How a record's fields are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// As the source's REST API returns them.
    Api,
    /// Azure Monitor's common schema, in which diagnostic settings stream and archive records:
    /// `time`, `category`, `operationName`, `resultType`, …, and for Entra ID logs the API's own
    /// record under `properties`. The source supplies the id (`id_hint`).
    Streamed,
}

/// Why a record could not be normalised. The message ends up in the dead-letter file.
#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("failed to read {kind} record: {source}")]
    Shape {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to read {kind} record: {field} is not an RFC 3339 time: {value:?}")]
    Time {
        kind: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("failed to read {kind} record: it has no {what}")]
    Missing {
        kind: &'static str,
        what: &'static str,
    },
    #[error("failed to read record: it is not a JSON object")]
    NotAnObject,
}

impl NormaliseError {
    /// Short category for metrics labels.
    pub fn category(&self) -> &'static str {
        match self {
            NormaliseError::Shape { .. } => "shape",
            NormaliseError::Time { .. } => "time",
            NormaliseError::Missing { .. } => "missing_field",
            NormaliseError::NotAnObject => "not_an_object",
        }
    }
}

/// A record that could not be normalised, handed back whole for the dead-letter file.
#[derive(Debug)]
pub struct Rejected {
    pub error: NormaliseError,
    pub payload: RawJson,
}

pub fn normalise(record: RawRecord, ctx: &NormaliseContext) -> Result<Event, Rejected> {
    // A row the wad source decoded was written by it, compact; nothing to scan for.
    let compacted = match record.wad_columns {
        Some(_) => Cow::Borrowed(record.raw.get()),
        None => compact_json(record.raw.get()),
    };
    let raw = match compacted {
        Cow::Borrowed(_) => record.raw,
        Cow::Owned(text) => match RawJson::parse(text) {
            Ok(compacted) => compacted,
            Err(source) => {
                let error = NormaliseError::Shape {
                    kind: record.kind.as_str(),
                    source,
                };
                return Err(Rejected {
                    error,
                    payload: record.raw,
                });
            }
        },
    };
    let fields = if raw.get().starts_with('{') {
        match record.kind {
            EventKind::Wad => wad::row::normalise(&raw, record.wad_columns, ctx),
            EventKind::ActivityLog => match record.schema {
                Schema::Api => activity_log::record::normalise(&raw, ctx),
                Schema::Streamed => diagnostic_logs::record::normalise(
                    EventKind::ActivityLog,
                    &raw,
                    record.id_hint,
                    ctx,
                ),
            },
            EventKind::SecurityAlert => security_alerts::record::normalise(&raw, ctx),
            EventKind::DirectoryAudit => match record.schema {
                Schema::Api => entra_audit::directory_audit::normalise(&raw, ctx),
                Schema::Streamed => {
                    streamed(EventKind::DirectoryAudit, &raw, record.id_hint, |p| {
                        entra_audit::directory_audit::normalise(p, ctx)
                    })
                }
            },
            EventKind::DiagnosticLog => diagnostic_logs::record::normalise(
                EventKind::DiagnosticLog,
                &raw,
                record.id_hint,
                ctx,
            ),
            EventKind::SignIn => match record.schema {
                Schema::Api => entra_audit::sign_in::normalise(&raw, ctx),
                Schema::Streamed => streamed(EventKind::SignIn, &raw, record.id_hint, |p| {
                    entra_audit::sign_in::normalise(p, ctx)
                }),
            },
        }
    } else {
        Err(NormaliseError::NotAnObject)
    };
    match fields {
        Ok(mut event) => {
            event.raw = raw;
            Ok(event)
        }
        Err(error) => Err(Rejected {
            error,
            payload: raw,
        }),
    }
}

/// A streamed Entra ID record: the API's record under `properties`, normalised as the API's, with
/// the id the source gave it (where in the stream it was).
fn streamed(
    kind: EventKind,
    raw: &RawJson,
    id: Option<String>,
    normalise_api: impl FnOnce(&RawJson) -> Result<Event, NormaliseError>,
) -> Result<Event, NormaliseError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        properties: &'a serde_json::value::RawValue,
    }
    let envelope: Envelope = parse(kind, raw)?;
    let properties = RawJson::from(envelope.properties);
    let mut event = normalise_api(&properties)?;
    event.id = id.ok_or(NormaliseError::Missing {
        kind: kind.as_str(),
        what: "position (the source must supply one)",
    })?;
    Ok(event)
}

pub(crate) fn parse<'a, T: Deserialize<'a>>(
    kind: EventKind,
    raw: &'a RawJson,
) -> Result<T, NormaliseError> {
    serde_json::from_str(raw.get()).map_err(|source| NormaliseError::Shape {
        kind: kind.as_str(),
        source,
    })
}

pub(crate) fn time(
    kind: EventKind,
    field: &'static str,
    value: &str,
) -> Result<DateTime<Utc>, NormaliseError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| NormaliseError::Time {
            kind: kind.as_str(),
            field,
            value: value.chars().take(64).collect(),
        })
}

pub(crate) fn placeholder_raw() -> RawJson {
    // Replaced by the real record in `normalise`; avoids an Option in Event.
    RawJson::null()
}

pub(crate) fn last_segment(resource_id: &str) -> Option<String> {
    resource_id
        .rsplit('/')
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(crate) fn subscription_of(resource_id: &str) -> Option<String> {
    let mut parts = resource_id.split('/');
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("subscriptions") {
            return parts.next().map(str::to_owned);
        }
    }
    None
}

/// `{"value": "...", "localizedValue": "..."}` as ARM sends names.
#[derive(Deserialize)]
pub(crate) struct Localized<'a> {
    #[serde(borrow)]
    pub(crate) value: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "localizedValue")]
    pub(crate) localized_value: Option<Cow<'a, str>>,
}

impl Localized<'_> {
    pub(crate) fn best(&self) -> Option<String> {
        self.localized_value
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.value.as_deref())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;

    fn ctx() -> NormaliseContext {
        NormaliseContext {
            source_name: Arc::from("prod"),
            subscription_id: Some("sub-from-config".into()),
        }
    }

    fn record(kind: EventKind, json: &str) -> RawRecord {
        RawRecord {
            kind,
            raw: RawJson::parse(json.to_owned()).expect("test json"),
            id_hint: None,
            wad_columns: None,
            schema: Schema::Api,
        }
    }

    fn example(name: &str) -> serde_json::Value {
        // Copies of the public REST API specification examples (Azure Monitor, Security, Graph).
        let path = format!(
            "{}/testdata/azure-examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("azure example present");
        serde_json::from_str(&text).expect("example parses")
    }

    #[test]
    fn a_failed_risky_sign_in_is_critical_and_names_user_app_and_reason() {
        let rec = r#"{"id":"s-1","createdDateTime":"2026-11-22T10:00:00Z","userPrincipalName":"alice@contoso.com","appDisplayName":"Azure Portal","ipAddress":"203.0.113.7","clientAppUsed":"Browser","riskLevelDuringSignIn":"high","status":{"errorCode":50126,"failureReason":"Invalid username or password."}}"#;
        let event = normalise(record(EventKind::SignIn, rec), &ctx()).expect("normalises");
        assert_eq!(event.id, "s-1");
        assert_eq!(event.severity, Severity::Critical);
        assert_eq!(event.outcome.as_deref(), Some("failure"));
        assert_eq!(event.actor.as_deref(), Some("alice@contoso.com"));
        assert_eq!(event.client_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(
            event.message(),
            "Sign-in by alice@contoso.com to Azure Portal failed (50126): Invalid username or password."
        );
        let ok = rec
            .replace(r#""errorCode":50126"#, r#""errorCode":0"#)
            .replace(r#""high""#, r#""none""#);
        let event = normalise(record(EventKind::SignIn, &ok), &ctx()).expect("normalises");
        assert_eq!(event.severity, Severity::Informational);
        assert_eq!(event.outcome.as_deref(), Some("success"));
    }

    #[test]
    fn activity_log_example_from_the_rest_spec_normalises() {
        let doc = example("activitylog_GetActivityLogsFiltered.json");
        let rec = &doc["responses"]["200"]["body"]["value"][0];
        let pretty = serde_json::to_string_pretty(rec).expect("serialise");
        let event = normalise(record(EventKind::ActivityLog, &pretty), &ctx()).expect("normalises");
        assert_eq!(event.id, "44ade6b4-3813-45e6-ae27-7420a95fa2f8");
        assert_eq!(event.actor.as_deref(), Some("admin@contoso.com"));
        assert_eq!(event.client_ip.as_deref(), Some("192.168.35.115"));
        assert_eq!(event.name, "microsoft.support/supporttickets/write");
        assert_eq!(event.outcome.as_deref(), Some("Succeeded"));
        assert_eq!(
            event.subscription_id.as_deref(),
            Some("089bd33f-d4ec-47fe-8ba5-0753aa5c5b33")
        );
        assert_eq!(
            event.time.to_rfc3339(),
            "2015-01-21T22:14:26.979277600+00:00"
        );
        assert!(
            !event.raw.get().contains('\n'),
            "record compacted to one line"
        );
        let original: serde_json::Value = serde_json::from_str(event.raw.get()).expect("json");
        assert_eq!(&original, rec, "record kept intact");
    }

    #[test]
    fn security_alert_example_from_the_rest_spec_normalises() {
        let doc = example("security_GetAlertsSubscription_example.json");
        let rec = doc["responses"]["200"]["body"]["value"][0].to_string();
        let event = normalise(record(EventKind::SecurityAlert, &rec), &ctx()).expect("normalises");
        assert_eq!(
            event.id,
            "2518298467986649999_4d25bfef-2d77-4a08-adc0-3e35715cc92a|Active"
        );
        assert_eq!(event.severity, Severity::Critical);
        assert_eq!(event.name, "VM_EICAR");
        assert_eq!(
            event.subscription_id.as_deref(),
            Some("20ff7fc3-e762-44dd-bd96-b71116dcdc23")
        );
    }

    #[test]
    fn directory_audit_examples_from_graph_normalise() {
        for name in [
            "graph_directoryAudits_list_example1.json",
            "graph_directoryAudits_list_example2_filter.json",
        ] {
            let doc = example(name);
            let rec = doc["value"][0].to_string();
            let event =
                normalise(record(EventKind::DirectoryAudit, &rec), &ctx()).expect("normalises");
            assert!(!event.id.is_empty());
            assert_eq!(event.outcome.as_deref(), Some("success"));
        }
    }

    #[test]
    fn wad_int64_columns_sent_as_strings_are_read() {
        let rec = r#"{"PartitionKey":"0638412345600000000","RowKey":"r1","TIMESTAMP":"2024-01-01T00:00:00Z",
            "EventId":"4625","EventId@odata.type":"Edm.Int64","Level":2,"Channel":"Security"}"#;
        let event = normalise(record(EventKind::Wad, rec), &ctx()).expect("normalises");
        assert_eq!(event.name, "4625");
        assert_eq!(event.severity, Severity::Error);
        assert_eq!(event.id, "0638412345600000000|r1");
    }

    #[test]
    fn a_record_missing_its_id_is_an_error_naming_the_field() {
        let err = normalise(
            record(
                EventKind::ActivityLog,
                r#"{"eventTimestamp":"2024-01-01T00:00:00Z"}"#,
            ),
            &ctx(),
        )
        .expect_err("must fail")
        .error;
        assert!(err.to_string().contains("eventDataId"), "{err}");
    }

    #[test]
    fn a_bad_time_is_an_error_quoting_the_value() {
        let err = normalise(
            record(
                EventKind::DirectoryAudit,
                r#"{"id":"1","activityDateTime":"yesterday"}"#,
            ),
            &ctx(),
        )
        .expect_err("must fail")
        .error;
        assert_eq!(err.category(), "time");
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
    }

    #[test]
    fn a_non_object_record_is_rejected() {
        let rejected = normalise(record(EventKind::Wad, "[1,2]"), &ctx()).expect_err("must fail");
        assert_eq!(rejected.error.category(), "not_an_object");
        assert_eq!(
            rejected.payload.get(),
            "[1,2]",
            "the payload comes back for the dead-letter file"
        );
    }
}
