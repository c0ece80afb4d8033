//! Reading a page of WAD table rows (`{"value": [rows…], …}`) as Table storage answers a query.
//!
//! Each row comes out as the JSON outputs get, typed: a column's annotation
//! (`EventTickCount@odata.type: Edm.Int64` turns the string Table storage sends for an Int64 into
//! a number) is applied and the OData bookkeeping dropped, so outputs see the row's own columns in
//! the table's order. The columns the normaliser reads are decoded on the way.
//!
//! This runs for every row, so the row is not built through a serializer: serde_json checks the
//! page once, and the row's members are then walked and copied as they are.

use std::borrow::Cow;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::normalise::WadRow;
use crate::raw_json::RawJson;

/// A row of a page, typed, with the columns the normaliser reads; or refused, with why, for the
/// dead-letter file.
#[derive(Debug)]
pub enum Row {
    Typed(RawJson, Box<WadRow<'static>>),
    Refused { payload: String, reason: String },
}

/// Reads a page in one pass; a row that breaks its own types is refused and the page goes on.
pub fn rows_of_page(body: &[u8]) -> Result<Vec<Row>, String> {
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
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
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
        // Each row is checked by the parser as it is taken, then walked without it.
        while let Some(row) = seq.next_element::<&'de RawValue>()? {
            let row = row.get();
            if !row.starts_with('{') {
                return Err(serde::de::Error::custom(format!(
                    "a table row is an object, not {}",
                    row.chars().take(40).collect::<String>()
                )));
            }
            self.rows.push(typed_row(row));
        }
        Ok(())
    }
}

/// Types one row: `object` is a JSON object the parser has checked.
fn typed_row(object: &str) -> Row {
    // Typing only drops members and shortens Int64 strings: the row never grows.
    let mut out = String::with_capacity(object.len());
    let mut decoded = WadRow::default();
    let (mut partition, mut row) = (false, false);
    let mut problem = None;
    // Table storage writes a column's annotation just before the column.
    let mut int64_next: Option<Cow<'_, str>> = None;
    out.push('{');
    for (name_json, value) in members(object) {
        let name = match string_content(name_json) {
            (content, false) => Cow::Borrowed(content),
            (content, true) => match crate::json::unescape(content) {
                Ok(name) => Cow::Owned(name),
                Err(e) => {
                    problem.get_or_insert(format!("column name {name_json}: {e}"));
                    continue;
                }
            },
        };
        if let Some(length) = name.strip_suffix("@odata.type").map(str::len) {
            if value == "\"Edm.Int64\"" {
                int64_next = Some(match name {
                    Cow::Borrowed(name) => Cow::Borrowed(&name[..length]),
                    Cow::Owned(name) => Cow::Owned(name[..length].to_owned()),
                });
            }
            continue;
        }
        if name.starts_with("odata.") {
            continue;
        }
        partition |= name == "PartitionKey";
        row |= name == "RowKey";
        if let Err(e) = decoded.take_column(&name, value) {
            problem.get_or_insert(format!("column {name}: {e}"));
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(name_json);
        out.push(':');
        let int64 = int64_next.take().is_some_and(|column| column == name);
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(digits) if int64 => match digits.parse::<i64>() {
                Ok(number) => out.push_str(itoa::Buffer::new().format(number)),
                Err(_) => {
                    problem.get_or_insert(format!(
                        "column {name} is typed Edm.Int64 but holds {value}"
                    ));
                    out.push_str(value);
                }
            },
            _ => out.push_str(value),
        }
    }
    out.push('}');
    if !partition {
        problem.get_or_insert_with(|| "the row has no PartitionKey".into());
    } else if !row {
        problem.get_or_insert_with(|| "the row has no RowKey".into());
    }
    match problem {
        // Every piece is a member of the checked row, or an integer formatted here.
        None => Row::Typed(RawJson::assembled(out), Box::new(decoded)),
        Some(reason) => Row::Refused {
            payload: out,
            reason,
        },
    }
}

/// The members of a JSON object the parser has checked, as (name, value) JSON text: the name with
/// its quotes and escapes as written, the value exactly as written.
fn members(object: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = object.as_bytes();
    // Past the `{`; `at` is always on a token or on whitespace before one.
    let mut at = 1;
    std::iter::from_fn(move || {
        at = skip_space(bytes, at);
        if bytes.get(at) == Some(&b',') {
            at = skip_space(bytes, at + 1);
        }
        if bytes.get(at) != Some(&b'"') {
            // `}`: the object is done.
            return None;
        }
        let name_end = string_end(bytes, at);
        let name = &object[at..name_end];
        // Whitespace, the `:`, whitespace.
        let value_start = skip_space(bytes, skip_space(bytes, name_end) + 1);
        let value_end = value_end(bytes, value_start);
        at = value_end;
        Some((name, &object[value_start..value_end]))
    })
}

/// A JSON string literal's content and whether it holds an escape.
fn string_content(literal: &str) -> (&str, bool) {
    let content = &literal[1..literal.len() - 1];
    (content, memchr::memchr(b'\\', content.as_bytes()).is_some())
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// Where the string literal starting at `bytes[at]` (its opening quote) ends, past its closing
/// quote.
fn string_end(bytes: &[u8], at: usize) -> usize {
    let mut from = at + 1;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[from..]) {
        let found = from + found;
        if bytes[found] == b'"' {
            return found + 1;
        }
        // An escape: the character after the backslash is never the closing quote.
        from = found + 2;
    }
    bytes.len()
}

/// Where the value starting at `bytes[at]` ends.
fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        Some(b'"') => string_end(bytes, at),
        Some(b'{' | b'[') => {
            // Not a Table storage type, but valid JSON all the same: matched bracket by bracket.
            let mut depth = 0usize;
            let mut i = at;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        // A number, true, false or null: up to the next delimiter.
        _ => {
            let mut i = at;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::normalise::{NormaliseContext, RawRecord, normalise};
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
    fn whitespace_escaped_names_and_values_of_any_json_type_are_carried_over() {
        let rows = page(
            "{ \"PartitionKey\" : \"p\" ,\n\t\"Row\\u004bey\":\"r\", \"N\": -1.5e3 , \"B\":true,\"Z\":null,\"A\":[1,{\"x\":\"]}\"}],\"O\":{\"k\":[]},\"E\":\"\\\"}\"}",
        );
        let Some(Row::Typed(row, columns)) = rows.into_iter().next() else {
            panic!("one typed row")
        };
        assert_eq!(columns.keys(), ("p", "r"));
        assert_eq!(
            row.get(),
            r#"{"PartitionKey":"p","Row\u004bey":"r","N":-1.5e3,"B":true,"Z":null,"A":[1,{"x":"]}"}],"O":{"k":[]},"E":"\"}"}"#
        );
    }

    #[test]
    fn a_row_that_breaks_its_own_types_is_refused_with_the_reason_and_the_page_goes_on() {
        let rows = page(
            r#"{"PartitionKey":"p","RowKey":"r","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"soon"},{"RowKey":"r2"},{"PartitionKey":"p","RowKey":"r3"},{"PartitionKey":"p","RowKey":"r4","Description":"\ud800"}"#,
        );
        assert_eq!(rows.len(), 4);
        match &rows[0] {
            Row::Refused { payload, reason } => {
                assert!(reason.contains("EventTickCount"), "{reason}");
                assert!(payload.contains("soon"), "{payload}");
            }
            other => panic!("refused, not {other:?}"),
        }
        assert!(matches!(&rows[1], Row::Refused { reason, .. } if reason.contains("PartitionKey")));
        assert!(matches!(&rows[2], Row::Typed(_, columns) if columns.keys().1 == "r3"));
        assert!(
            matches!(&rows[3], Row::Refused { reason, .. } if reason.contains("Description") && reason.contains("surrogate"))
        );
        assert!(rows_of_page(br#"{"value":[{"PartitionKey":"#).is_err());
        assert!(rows_of_page(br#"{"value":[{"PartitionKey":"a	b"}]}"#).is_err());
        assert!(rows_of_page(br#"{"value":["row"]}"#).is_err());
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
}
