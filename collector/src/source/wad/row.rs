//! A WAD row as an event: the columns an event is made of, read in place where the `wad` source
//! noted them while writing the row ([`WadColumns`]), or parsed from the row's JSON otherwise.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer};

use crate::event::{Event, EventKind, Message, Severity};
use crate::json::RawJson;
use crate::normalise::{NormaliseContext, NormaliseError, parse, placeholder_raw, time};

/// Normalises a WAD row, reading its columns where `columns` says when the source noted them.
pub(crate) fn normalise(
    raw: &RawJson,
    columns: Option<Box<WadColumns>>,
    ctx: &NormaliseContext,
) -> Result<Event, NormaliseError> {
    match columns {
        Some(columns) => event(columns.resolve(raw.get()), ctx),
        None => parse(EventKind::Wad, raw).and_then(|row| event(row, ctx)),
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

fn event(row: WadRow<'_>, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
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
