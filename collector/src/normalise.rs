//! Turning raw Azure records into [`Event`]s.
//!
//! Each source hands over records exactly as Azure sent them. Parsing reads only the fields the
//! outputs need, borrowing from the record, and keeps the record itself intact. A record that does not
//! have the shape its API promises is an error for the caller to dead-letter, never a panic.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::event::{Event, EventKind, Message, Severity};
use crate::raw_json::RawJson;

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
            EventKind::Wad => match record.wad_columns {
                Some(columns) => wad_event(columns.resolve(raw.get()), ctx),
                None => parse(EventKind::Wad, &raw).and_then(|row| wad_event(row, ctx)),
            },
            EventKind::ActivityLog => activity_log(&raw, ctx),
            EventKind::SecurityAlert => security_alert(&raw, ctx),
            EventKind::DirectoryAudit => directory_audit(&raw, ctx),
            EventKind::DiagnosticLog => diagnostic_log(&raw, record.id_hint, ctx),
            EventKind::SignIn => sign_in(&raw, ctx),
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

fn parse<'a, T: Deserialize<'a>>(kind: EventKind, raw: &'a RawJson) -> Result<T, NormaliseError> {
    serde_json::from_str(raw.get()).map_err(|source| NormaliseError::Shape {
        kind: kind.as_str(),
        source,
    })
}

fn time(
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

fn placeholder_raw() -> RawJson {
    // Replaced by the real record in `normalise`; avoids an Option in Event.
    RawJson::null()
}

fn last_segment(resource_id: &str) -> Option<String> {
    resource_id
        .rsplit('/')
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

fn subscription_of(resource_id: &str) -> Option<String> {
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
struct Localized<'a> {
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "localizedValue")]
    localized_value: Option<Cow<'a, str>>,
}

impl Localized<'_> {
    fn best(&self) -> Option<String> {
        self.localized_value
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.value.as_deref())
            .map(str::to_owned)
    }
}

/// Table storage sends Int32 as numbers and Int64 as strings; accept either.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<'a> {
        Int(i64),
        #[serde(borrow)]
        Text(Cow<'a, str>),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Int(n)) => Ok(Some(n)),
        Some(Either::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, found {s:?}"))),
    }
}

/// The columns of a WAD row that an [`Event`] is made of.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WadRow<'a> {
    #[serde(borrow)]
    partition_key: Cow<'a, str>,
    #[serde(borrow)]
    row_key: Cow<'a, str>,
    #[serde(borrow, rename = "TIMESTAMP")]
    event_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    precise_time_stamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "int_or_string")]
    event_id: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    level: Option<i64>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    provider_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role_instance: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    /// Where the description (or message) is in the row, when the `wad` source noted it: it is
    /// then decoded only if an output shows it.
    #[serde(skip)]
    text_at: Option<Range<usize>>,
}

/// Where the columns an [`Event`] is made of sit in a WAD row's typed JSON, noted by the `wad`
/// source while it wrote the row. The normaliser then reads them in place: the row is neither
/// parsed a second time nor are columns it only looks at (keys, times) copied.
#[derive(Debug, Default)]
pub struct WadColumns {
    partition_key: Option<Text>,
    row_key: Option<Text>,
    event_timestamp: Option<Text>,
    precise_time_stamp: Option<Text>,
    timestamp: Option<Text>,
    event_id: Option<i64>,
    level: Option<i64>,
    channel: Option<Text>,
    provider_name: Option<Text>,
    role_instance: Option<Text>,
    /// The description and message columns: their content, escapes and all.
    description: Option<Range<usize>>,
    message: Option<Range<usize>>,
}

/// A string column's content: where it is in the row, or, when it holds escapes, decoded.
#[derive(Debug)]
enum Text {
    At(Range<usize>),
    Decoded(String),
}

impl WadColumns {
    /// Notes one column of a row being written, if it is one of ours: `value` is the column's JSON
    /// text as written into the row at byte `at`, already checked by the parser. The same columns,
    /// under the same names and with the same types, as [`WadRow`]'s derived `Deserialize` reads.
    pub fn take(&mut self, name: &str, value: &str, at: usize) -> Result<(), String> {
        let content = value.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
        let content_at = || match content {
            Some(content) => Ok(Some(at + 1..at + 1 + content.len())),
            None if value == "null" => Ok(None),
            None => Err(format!("expected a string, found {value}")),
        };
        let text = || -> Result<Option<Text>, String> {
            Ok(match (content, content_at()?) {
                (Some(escaped), Some(_)) if escaped.contains('\\') => {
                    Some(Text::Decoded(crate::json::unescape(escaped)?))
                }
                (_, range) => range.map(Text::At),
            })
        };
        let number = || -> Result<Option<i64>, String> {
            match value.parse::<i64>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => int_or_string(&mut serde_json::Deserializer::from_str(value))
                    .map_err(|e| e.to_string()),
            }
        };
        match name {
            "PartitionKey" => self.partition_key = text()?,
            "RowKey" => self.row_key = text()?,
            "TIMESTAMP" => self.event_timestamp = text()?,
            "PreciseTimeStamp" => self.precise_time_stamp = text()?,
            "Timestamp" => self.timestamp = text()?,
            "EventId" => self.event_id = number()?,
            "Level" => self.level = number()?,
            "Channel" => self.channel = text()?,
            "ProviderName" => self.provider_name = text()?,
            "Description" => self.description = content_at()?,
            "RoleInstance" => self.role_instance = text()?,
            "Message" => self.message = content_at()?,
            _ => {}
        }
        Ok(())
    }

    /// The row's (PartitionKey, RowKey), its place in the table; `row` is the typed row these
    /// columns were noted in.
    pub fn keys<'a>(&'a self, row: &'a str) -> (&'a str, &'a str) {
        (
            Text::read(&self.partition_key, row).unwrap_or_default(),
            Text::read(&self.row_key, row).unwrap_or_default(),
        )
    }

    /// The columns read from `row`, the typed row they were noted in; a decoded column moves.
    fn resolve(self, row: &str) -> WadRow<'_> {
        let text = |column: Option<Text>| {
            column.map(|text| match text {
                Text::At(range) => Cow::Borrowed(&row[range]),
                Text::Decoded(decoded) => Cow::Owned(decoded),
            })
        };
        WadRow {
            partition_key: text(self.partition_key).unwrap_or_default(),
            row_key: text(self.row_key).unwrap_or_default(),
            event_timestamp: text(self.event_timestamp),
            precise_time_stamp: text(self.precise_time_stamp),
            timestamp: text(self.timestamp),
            event_id: self.event_id,
            level: self.level,
            channel: text(self.channel),
            provider_name: text(self.provider_name),
            description: None,
            role_instance: text(self.role_instance),
            message: None,
            text_at: self.description.or(self.message),
        }
    }
}

impl Text {
    fn read<'a>(column: &'a Option<Text>, row: &'a str) -> Option<&'a str> {
        column.as_ref().map(|text| match text {
            Text::At(range) => &row[range.clone()],
            Text::Decoded(decoded) => decoded,
        })
    }
}

fn wad_event(row: WadRow<'_>, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
    let kind = EventKind::Wad;
    let (field, when) = [
        ("TIMESTAMP", &row.event_timestamp),
        ("PreciseTimeStamp", &row.precise_time_stamp),
        ("Timestamp", &row.timestamp),
    ]
    .into_iter()
    .find_map(|(f, v)| v.as_deref().map(|v| (f, v)))
    .ok_or(NormaliseError::Missing {
        kind: kind.as_str(),
        what: "TIMESTAMP, PreciseTimeStamp or Timestamp",
    })?;
    // Windows event levels: 1 critical, 2 error, 3 warning, 4 information, 5 verbose; 0 is "log always".
    let severity = match row.level {
        Some(1) => Severity::Critical,
        Some(2) => Severity::Error,
        Some(3) => Severity::Warning,
        Some(5) => Severity::Verbose,
        _ => Severity::Informational,
    };
    let provider = row.provider_name.as_deref().unwrap_or("WAD");
    let name = row.event_id.map_or_else(
        || "log".to_owned(),
        |id| itoa::Buffer::new().format(id).to_owned(),
    );
    let message = match row.text_at {
        Some(range) => Message::InRaw(range),
        None => Message::Text(
            row.description
                .or(row.message)
                .map(Cow::into_owned)
                .unwrap_or_default(),
        ),
    };
    Ok(Event {
        // `concat` sizes each string once; this runs for every row of a backlog.
        id: [&*row.partition_key, "|", &row.row_key].concat(),
        kind,
        time: time(kind, field, when)?,
        severity,
        host: row.role_instance.map(Cow::into_owned),
        resource_id: None,
        subscription_id: ctx.subscription_id.clone(),
        category: row.channel.map(Cow::into_owned),
        title: [provider, " event ", &name].concat(),
        name,
        message,
        actor: None,
        client_ip: None,
        outcome: None,
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityRecord<'a> {
    #[serde(borrow)]
    event_data_id: Cow<'a, str>,
    #[serde(borrow)]
    event_timestamp: Cow<'a, str>,
    #[serde(borrow)]
    level: Option<Cow<'a, str>>,
    #[serde(borrow)]
    caller: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Localized<'a>>,
    #[serde(borrow)]
    operation_name: Option<Localized<'a>>,
    #[serde(borrow)]
    status: Option<Localized<'a>>,
    #[serde(borrow)]
    resource_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subscription_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    http_request: Option<HttpRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRequest<'a> {
    #[serde(borrow)]
    client_ip_address: Option<Cow<'a, str>>,
}

fn activity_log(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
    let kind = EventKind::ActivityLog;
    let rec: ActivityRecord = parse(kind, raw)?;
    let severity = match rec.level.as_deref() {
        Some("Critical") => Severity::Critical,
        Some("Error") => Severity::Error,
        Some("Warning") => Severity::Warning,
        Some("Verbose") => Severity::Verbose,
        _ => Severity::Informational,
    };
    let operation = rec
        .operation_name
        .as_ref()
        .and_then(|o| o.value.as_deref())
        .unwrap_or("unknown")
        .to_owned();
    let title = rec
        .operation_name
        .as_ref()
        .and_then(Localized::best)
        .unwrap_or_else(|| operation.clone());
    let outcome = rec
        .status
        .as_ref()
        .and_then(|s| s.value.as_deref().map(str::to_owned));
    let resource_id = rec.resource_id.map(Cow::into_owned);
    let subscription_id = rec
        .subscription_id
        .map(Cow::into_owned)
        .or_else(|| resource_id.as_deref().and_then(subscription_of))
        .or_else(|| ctx.subscription_id.clone());
    let message = match rec.description.as_deref() {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => format!(
            "{title} {} by {}",
            outcome.as_deref().unwrap_or("reported"),
            rec.caller.as_deref().unwrap_or("unknown caller")
        ),
    };
    Ok(Event {
        id: rec.event_data_id.into_owned(),
        kind,
        time: time(kind, "eventTimestamp", &rec.event_timestamp)?,
        severity,
        host: resource_id.as_deref().and_then(last_segment),
        resource_id,
        subscription_id,
        category: rec
            .category
            .as_ref()
            .and_then(|c| c.value.as_deref().map(str::to_owned)),
        name: operation,
        title,
        message: message.into(),
        actor: rec.caller.map(Cow::into_owned),
        client_ip: rec
            .http_request
            .and_then(|h| h.client_ip_address.map(Cow::into_owned)),
        outcome,
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

#[derive(Deserialize)]
struct AlertRecord<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    properties: AlertProperties<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertProperties<'a> {
    #[serde(borrow)]
    alert_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alert_display_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    intent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time_generated_utc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    start_time_utc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    compromised_entity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource_identifiers: Vec<ResourceIdentifier<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceIdentifier<'a> {
    #[serde(borrow)]
    azure_resource_id: Option<Cow<'a, str>>,
}

fn security_alert(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
    let kind = EventKind::SecurityAlert;
    let rec: AlertRecord = parse(kind, raw)?;
    let p = rec.properties;
    let (field, when) = p
        .time_generated_utc
        .as_deref()
        .map(|t| ("properties.timeGeneratedUtc", t))
        .or(p
            .start_time_utc
            .as_deref()
            .map(|t| ("properties.startTimeUtc", t)))
        .ok_or(NormaliseError::Missing {
            kind: kind.as_str(),
            what: "properties.timeGeneratedUtc or properties.startTimeUtc",
        })?;
    let severity = match p.severity.as_deref() {
        Some("High") => Severity::Critical,
        Some("Medium") => Severity::Warning,
        Some("Low") => Severity::Notice,
        _ => Severity::Informational,
    };
    let status = p.status.as_deref().unwrap_or("Unknown");
    let resource_id = p
        .resource_identifiers
        .iter()
        .find_map(|r| r.azure_resource_id.as_deref().map(str::to_owned));
    let subscription_id = resource_id
        .as_deref()
        .and_then(subscription_of)
        .or_else(|| rec.id.as_deref().and_then(subscription_of))
        .or_else(|| ctx.subscription_id.clone());
    let title = p
        .alert_display_name
        .as_deref()
        .or(p.alert_type.as_deref())
        .unwrap_or("Security alert")
        .to_owned();
    Ok(Event {
        // A status change (Active -> Resolved) is news; a re-list of the same status is not.
        id: format!("{}|{}", rec.name, status),
        kind,
        time: time(kind, field, when)?,
        severity,
        host: p
            .compromised_entity
            .map(Cow::into_owned)
            .or_else(|| resource_id.as_deref().and_then(last_segment)),
        resource_id,
        subscription_id,
        category: p.intent.map(Cow::into_owned),
        name: p
            .alert_type
            .map_or_else(|| "alert".to_owned(), Cow::into_owned),
        title,
        message: p
            .description
            .map(Cow::into_owned)
            .unwrap_or_default()
            .into(),
        actor: None,
        client_ip: None,
        outcome: Some(status.to_owned()),
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditRecord<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    activity_date_time: Cow<'a, str>,
    #[serde(borrow)]
    activity_display_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    result: Option<Cow<'a, str>>,
    #[serde(borrow)]
    result_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    logged_by_service: Option<Cow<'a, str>>,
    #[serde(borrow)]
    initiated_by: Option<InitiatedBy<'a>>,
}

#[derive(Deserialize)]
struct InitiatedBy<'a> {
    #[serde(borrow)]
    user: Option<AuditUser<'a>>,
    #[serde(borrow)]
    app: Option<AuditApp<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditUser<'a> {
    #[serde(borrow)]
    user_principal_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ip_address: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditApp<'a> {
    #[serde(borrow)]
    display_name: Option<Cow<'a, str>>,
}

fn directory_audit(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
    let kind = EventKind::DirectoryAudit;
    let rec: AuditRecord = parse(kind, raw)?;
    let (actor, client_ip) = match rec.initiated_by {
        Some(InitiatedBy {
            user: Some(user), ..
        }) => (
            user.user_principal_name.map(Cow::into_owned),
            user.ip_address.map(Cow::into_owned),
        ),
        Some(InitiatedBy { app: Some(app), .. }) => (app.display_name.map(Cow::into_owned), None),
        _ => (None, None),
    };
    let failed = rec
        .result
        .as_deref()
        .is_some_and(|r| !r.eq_ignore_ascii_case("success"));
    let name = rec
        .activity_display_name
        .map_or_else(|| "activity".to_owned(), Cow::into_owned);
    let message = match rec.result_reason.as_deref() {
        Some(reason) if !reason.is_empty() => format!("{name}: {reason}"),
        _ => name.clone(),
    };
    Ok(Event {
        id: rec.id.into_owned(),
        kind,
        time: time(kind, "activityDateTime", &rec.activity_date_time)?,
        severity: if failed {
            Severity::Warning
        } else {
            Severity::Informational
        },
        host: rec.logged_by_service.map(Cow::into_owned),
        resource_id: None,
        subscription_id: None,
        category: rec.category.map(Cow::into_owned),
        title: name.clone(),
        name,
        message: message.into(),
        actor,
        client_ip,
        outcome: rec.result.map(Cow::into_owned),
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInRecord<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    created_date_time: Cow<'a, str>,
    #[serde(borrow)]
    user_principal_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    app_display_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_app_used: Option<Cow<'a, str>>,
    #[serde(borrow)]
    risk_level_during_sign_in: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<SignInStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInStatus<'a> {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(borrow)]
    failure_reason: Option<Cow<'a, str>>,
}

fn sign_in(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
    let kind = EventKind::SignIn;
    let rec: SignInRecord = parse(kind, raw)?;
    let (code, reason) = rec
        .status
        .map_or((0, None), |s| (s.error_code.unwrap_or(0), s.failure_reason));
    let failed = code != 0;
    let risky = matches!(
        rec.risk_level_during_sign_in.as_deref(),
        Some("medium" | "high")
    );
    let app = rec.app_display_name.as_deref().unwrap_or("an application");
    let user = rec.user_principal_name.as_deref().unwrap_or("unknown user");
    let message = match (failed, reason.as_deref()) {
        (true, Some(reason)) => format!("Sign-in by {user} to {app} failed ({code}): {reason}"),
        (true, None) => format!("Sign-in by {user} to {app} failed ({code})"),
        (false, _) => format!("Sign-in by {user} to {app} succeeded"),
    };
    Ok(Event {
        id: rec.id.into_owned(),
        kind,
        time: time(kind, "createdDateTime", &rec.created_date_time)?,
        severity: match (risky, failed) {
            (true, _) => Severity::Critical,
            (false, true) => Severity::Warning,
            (false, false) => Severity::Informational,
        },
        host: None,
        resource_id: None,
        subscription_id: None,
        category: rec.client_app_used.map(Cow::into_owned),
        name: "Sign-in".to_owned(),
        title: format!("Sign-in to {app}"),
        message: message.into(),
        actor: rec.user_principal_name.map(Cow::into_owned),
        client_ip: rec.ip_address.map(Cow::into_owned),
        outcome: Some(if failed { "failure" } else { "success" }.to_owned()),
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

/// The common schema of resource logs (Azure Monitor "top-level" fields).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogRecord<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, alias = "resourceID", alias = "ResourceId")]
    resource_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    operation_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    result_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    result_description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    caller_ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    level: Option<Cow<'a, str>>,
}

fn diagnostic_log(
    raw: &RawJson,
    id_hint: Option<String>,
    ctx: &NormaliseContext,
) -> Result<Event, NormaliseError> {
    let kind = EventKind::DiagnosticLog;
    let rec: ResourceLogRecord = parse(kind, raw)?;
    let id = id_hint.ok_or(NormaliseError::Missing {
        kind: kind.as_str(),
        what: "position (the source must supply one)",
    })?;
    let severity = match rec.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => Severity::Critical,
        Some("error") => Severity::Error,
        Some("warning") => Severity::Warning,
        Some("verbose") => Severity::Verbose,
        _ => Severity::Informational,
    };
    let operation = rec
        .operation_name
        .map_or_else(|| "operation".to_owned(), Cow::into_owned);
    let resource_id = rec.resource_id.map(Cow::into_owned);
    let message = match rec.result_description.as_deref() {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => format!(
            "{operation} {}",
            rec.result_type.as_deref().unwrap_or("completed")
        ),
    };
    Ok(Event {
        id,
        kind,
        time: time(kind, "time", &rec.time)?,
        severity,
        host: resource_id.as_deref().and_then(last_segment),
        subscription_id: resource_id
            .as_deref()
            .and_then(subscription_of)
            .or_else(|| ctx.subscription_id.clone()),
        resource_id,
        category: rec.category.map(Cow::into_owned),
        title: operation.clone(),
        name: operation,
        message: message.into(),
        actor: None,
        client_ip: rec.caller_ip_address.map(Cow::into_owned),
        outcome: rec.result_type.map(Cow::into_owned),
        source_name: ctx.source_name.clone(),
        raw: placeholder_raw(),
    })
}

/// Removes insignificant whitespace so every record fits on one line (pretty-printed API responses
/// would otherwise break NDJSON). JSON strings cannot hold a raw line break, so a record without
/// one is already a single line and is borrowed as it is: the common case, found with one memchr.
pub fn compact_json(text: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let first_space = bytes.iter().enumerate().position(|(_, &b)| {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            false
        } else if b == b'"' {
            in_string = true;
            false
        } else {
            b.is_ascii_whitespace()
        }
    });
    let Some(start) = first_space else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    let (mut in_string, mut escaped) = (false, false);
    for ch in text[start..].chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !ch.is_ascii_whitespace() {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn compaction_keeps_whitespace_inside_strings() {
        let text = "{ \"a\" : \"x  y\\\" z\",\n \"b\":[1, 2] }";
        assert_eq!(compact_json(text), "{\"a\":\"x  y\\\" z\",\"b\":[1,2]}");
        assert!(
            matches!(compact_json("{\"a\": 1}"), Cow::Borrowed(_)),
            "one line already"
        );
    }
}
