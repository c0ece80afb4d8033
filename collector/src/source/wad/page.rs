//! Reading a page of WAD table rows (`{"value": [rows…], …}`) as Table storage answers a query.
//!
//! Each row comes out as the JSON outputs get, typed: a column's annotation
//! (`EventTickCount@odata.type: Edm.Int64` turns the string Table storage sends for an Int64 into
//! a number) is applied and the OData bookkeeping dropped, so outputs see the row's own columns in
//! the table's order. Where the columns the normaliser reads are is noted on the way.
//!
//! This runs for every row, so the row is not built through a serializer: serde_json walks each
//! row's members once, handing over every value as its JSON text, which is copied as it is.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::row::WadColumns;
use crate::json::RawJson;

/// A row of a page, typed, with the columns the normaliser reads; or refused, with why, for the
/// dead-letter file.
#[derive(Debug)]
pub enum Row {
    Typed(RawJson, Box<WadColumns>),
    Refused { payload: String, reason: String },
}

/// Reads a page in one pass; a row that breaks its own types is refused and the page goes on.
pub fn rows_of_page(body: &[u8]) -> Result<Vec<Row>, String> {
    // Validated as UTF-8 once, so that the parser does not check every column value again.
    let body = std::str::from_utf8(body).map_err(|e| format!("the page is not UTF-8: {e}"))?;
    // Typing only drops members and shortens Int64 strings: the rows fit in the page's size.
    let mut read = Read {
        body,
        text: String::with_capacity(body.len()),
        rows: Vec::new(),
    };
    serde_json::Deserializer::from_str(body)
        .deserialize_map(PageVisitor { read: &mut read })
        .map_err(|e| e.to_string())?;
    let page = Arc::new(read.text);
    Ok(read
        .rows
        .into_iter()
        .map(|row| match row {
            Written::Typed(range, columns) => {
                Row::Typed(RawJson::assembled_in(&page, range), columns)
            }
            Written::Refused { payload, reason } => Row::Refused { payload, reason },
        })
        .collect())
}

/// A page being read: its typed rows, written one after another into one text.
struct Read<'de> {
    body: &'de str,
    text: String,
    rows: Vec<Written>,
}

/// A row as read: where in the page's text it was written, or why it was refused.
enum Written {
    Typed(Range<usize>, Box<WadColumns>),
    Refused { payload: String, reason: String },
}

struct PageVisitor<'r, 'de> {
    read: &'r mut Read<'de>,
}

impl<'de> Visitor<'de> for PageVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a page of table rows")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "value" {
                map.next_value_seed(Rows {
                    read: &mut *self.read,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Rows<'r, 'de> {
    read: &'r mut Read<'de>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of table rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element_seed(TypedRow {
            body: self.read.body,
            text: &mut self.read.text,
        })? {
            self.read.rows.push(row);
        }
        Ok(())
    }
}

/// One row, typed as the parser walks it: each member's value is taken as the JSON text it is,
/// so the row is read once and copied once, onto the end of the page's text.
struct TypedRow<'r, 'de> {
    body: &'de str,
    text: &'r mut String,
}

impl<'de> DeserializeSeed<'de> for TypedRow<'_, 'de> {
    type Value = Written;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Written, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TypedRow<'_, 'de> {
    type Value = Written;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table row (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Written, A::Error> {
        let mut typing = Typing::new(self.text);
        while let Some(name) = map.next_key_seed(ColumnName { body: self.body })? {
            let value = map.next_value::<&'de RawValue>()?;
            typing.member(name, value.get());
        }
        Ok(typing.finish())
    }
}

/// A row being typed: its JSON so far (from `start` of `out`), the columns the normaliser reads,
/// and the first reason to refuse it.
struct Typing<'r, 'de> {
    out: &'r mut String,
    start: usize,
    decoded: WadColumns,
    partition: bool,
    row: bool,
    problem: Option<String>,
    /// Table storage writes a column's annotation just before the column.
    int64_next: Option<Cow<'de, str>>,
}

impl<'r, 'de> Typing<'r, 'de> {
    fn new(out: &'r mut String) -> Self {
        let start = out.len();
        out.push('{');
        Typing {
            out,
            start,
            decoded: WadColumns::default(),
            partition: false,
            row: false,
            problem: None,
            int64_next: None,
        }
    }

    fn member(&mut self, name: ColumnNameOf<'de>, value: &str) {
        let name = match name {
            ColumnNameOf::Plain(name) => Cow::Borrowed(name),
            ColumnNameOf::Decoded(Ok(name)) => Cow::Owned(name),
            ColumnNameOf::Decoded(Err(e)) => {
                self.problem.get_or_insert(format!("a column name {e}"));
                return;
            }
        };
        if let Some(length) = name.strip_suffix("@odata.type").map(str::len) {
            if value == "\"Edm.Int64\"" {
                self.int64_next = Some(match name {
                    Cow::Borrowed(name) => Cow::Borrowed(&name[..length]),
                    Cow::Owned(name) => Cow::Owned(name[..length].to_owned()),
                });
            }
            return;
        }
        if name.starts_with("odata.") {
            return;
        }
        self.partition |= name == "PartitionKey";
        self.row |= name == "RowKey";
        let out = &mut *self.out;
        if out.len() > self.start + 1 {
            out.push(',');
        }
        match &name {
            // Without escapes, the name needs none.
            Cow::Borrowed(plain) => {
                out.push('"');
                out.push_str(plain);
                out.push('"');
            }
            Cow::Owned(decoded) => {
                out.push_str(&serde_json::Value::from(decoded.as_str()).to_string())
            }
        }
        out.push(':');
        let at = out.len();
        let int64 = self.int64_next.take().is_some_and(|column| column == name);
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(digits) if int64 => match digits.parse::<i64>() {
                Ok(number) => out.push_str(itoa::Buffer::new().format(number)),
                Err(_) => {
                    self.problem.get_or_insert(format!(
                        "column {name} is typed Edm.Int64 but holds {value}"
                    ));
                    out.push_str(value);
                }
            },
            _ => out.push_str(value),
        }
        if let Err(e) = self.decoded.take(&name, &out[at..], at - self.start) {
            self.problem.get_or_insert(format!("column {name}: {e}"));
        }
    }

    fn finish(self) -> Written {
        self.out.push('}');
        let problem = if !self.partition {
            Some("the row has no PartitionKey".into())
        } else if !self.row {
            Some("the row has no RowKey".into())
        } else {
            None
        };
        match self.problem.or(problem) {
            // Every piece is a member the parser checked, or written here as JSON.
            None => Written::Typed(self.start..self.out.len(), Box::new(self.decoded)),
            Some(reason) => {
                let payload = self.out[self.start..].to_owned();
                self.out.truncate(self.start);
                Written::Refused { payload, reason }
            }
        }
    }
}

/// A column name: borrowed from the page when written without escapes, else decoded.
enum ColumnNameOf<'de> {
    Plain(&'de str),
    /// A name that decodes to no Unicode string (a lone surrogate) is the row's problem, not
    /// the page's, so it comes back as the reason rather than a parse error.
    Decoded(Result<String, String>),
}

/// Reads a column name as bytes: the parser then leaves lone surrogates for us to refuse with
/// the row instead of failing the whole page. `body` is the page being parsed.
struct ColumnName<'de> {
    body: &'de str,
}

impl<'de> DeserializeSeed<'de> for ColumnName<'de> {
    type Value = ColumnNameOf<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for ColumnName<'de> {
    type Value = ColumnNameOf<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a column name")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, name: &'de [u8]) -> Result<Self::Value, E> {
        // Read as bytes, a name is not checked for control characters; a raw one is invalid JSON.
        if let Some(c) = name.iter().find(|&&b| b < 0x20) {
            return Err(E::custom(format!(
                "control character {c:#04x} in a column name"
            )));
        }
        // A name without escapes is a slice of the page, which is known to be UTF-8 already:
        // taken from there, it is not checked again (this runs for every column of every row).
        let start = (name.as_ptr() as usize).wrapping_sub(self.body.as_ptr() as usize);
        start
            .checked_add(name.len())
            .and_then(|end| self.body.get(start..end))
            .filter(|text| text.as_ptr() == name.as_ptr())
            .map(ColumnNameOf::Plain)
            .ok_or_else(|| E::custom("a column name from outside the page"))
    }

    fn visit_bytes<E: serde::de::Error>(self, name: &[u8]) -> Result<Self::Value, E> {
        Ok(ColumnNameOf::Decoded(
            String::from_utf8(name.to_vec()).map_err(|_| {
                format!(
                    "{} is not Unicode (a lone surrogate)",
                    String::from_utf8_lossy(name)
                )
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Message};
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
        assert_eq!(columns.keys(row.get()), ("0637000000000000000", "r1"));
        assert_eq!(
            row.get(),
            r#"{"PartitionKey":"0637000000000000000","RowKey":"r1","Timestamp":"2026-11-22T06:00:00.1234567Z","EventTickCount":638675000000000000,"EventId":4625}"#
        );
        let value: Value = serde_json::from_str(row.get()).expect("json");
        assert_eq!(value["EventTickCount"], Value::from(638675000000000000_i64));
    }

    #[test]
    fn whitespace_goes_escaped_names_are_rewritten_and_values_of_any_json_type_are_carried_over() {
        let rows = page(
            "{ \"PartitionKey\" : \"p\" ,\n\t\"Row\\u004bey\":\"r\", \"N\": -1.5e3 , \"B\":true,\"Z\":null,\"A\":[1,{\"x\":\"]}\"}],\"O\":{\"k\":[]},\"E\":\"\\\"}\",\"q\\\"\\/\":1}",
        );
        let Some(Row::Typed(row, columns)) = rows.into_iter().next() else {
            panic!("one typed row")
        };
        assert_eq!(columns.keys(row.get()), ("p", "r"));
        assert_eq!(
            row.get(),
            r#"{"PartitionKey":"p","RowKey":"r","N":-1.5e3,"B":true,"Z":null,"A":[1,{"x":"]}"}],"O":{"k":[]},"E":"\"}","q\"/":1}"#
        );
    }

    #[test]
    fn a_row_that_breaks_its_own_types_is_refused_with_the_reason_and_the_page_goes_on() {
        let rows = page(
            r#"{"PartitionKey":"p","RowKey":"r","EventTickCount@odata.type":"Edm.Int64","EventTickCount":"soon"},{"RowKey":"r2"},{"PartitionKey":"p","RowKey":"r3"},{"PartitionKey":"p","RowKey":"r4","Channel":"\ud800"},{"PartitionKey":"p","RowKey":"r5","X\udc00":1}"#,
        );
        assert_eq!(rows.len(), 5);
        match &rows[0] {
            Row::Refused { payload, reason } => {
                assert!(reason.contains("EventTickCount"), "{reason}");
                assert!(payload.contains("soon"), "{payload}");
            }
            other => panic!("refused, not {other:?}"),
        }
        assert!(matches!(&rows[1], Row::Refused { reason, .. } if reason.contains("PartitionKey")));
        assert!(matches!(&rows[2], Row::Typed(row, columns) if columns.keys(row.get()).1 == "r3"));
        assert!(
            matches!(&rows[3], Row::Refused { reason, .. } if reason.contains("Channel") && reason.contains("surrogate"))
        );
        assert!(
            matches!(&rows[4], Row::Refused { reason, .. } if reason.contains("column name") && reason.contains("surrogate"))
        );
        assert!(rows_of_page(br#"{"value":[{"PartitionKey":"#).is_err());
        assert!(rows_of_page(b"{\"value\":[{\"Partition\tKey\":\"p\"}]}").is_err());
        assert!(rows_of_page(br#"{"value":[{"PartitionKey":"a	b"}]}"#).is_err());
        assert!(rows_of_page(br#"{"value":["row"]}"#).is_err());
    }

    #[test]
    fn a_description_that_names_no_character_keeps_its_event_and_shows_a_replacement() {
        let page = page(
            r#"{"PartitionKey":"p","RowKey":"r","Timestamp":"2026-11-22T06:00:00Z","Description":"bad \udc00 end"}"#,
        );
        let Some(Row::Typed(raw, columns)) = page.into_iter().next() else {
            panic!("one typed row")
        };
        let ctx = NormaliseContext {
            source_name: "wad".into(),
            subscription_id: None,
        };
        let record = RawRecord {
            kind: EventKind::Wad,
            raw,
            id_hint: None,
            wad_columns: Some(columns),
            schema: crate::normalise::Schema::Api,
        };
        let event = normalise(record, &ctx).expect("normalised");
        assert_eq!(event.message(), "bad \u{FFFD} end");
        assert!(
            event.raw.get().contains(r"bad \udc00 end"),
            "{}",
            event.raw.get()
        );
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
            schema: crate::normalise::Schema::Api,
        };
        let mut decoded = normalise(record(Some(columns)), &ctx).expect("decoded while read");
        let parsed = normalise(record(None), &ctx).expect("parsed by the normaliser");
        // The description is left in the row until an output shows it.
        assert!(matches!(decoded.message, Message::InRaw(_)));
        assert_eq!(decoded.message(), "failed\r\nlogon é");
        decoded.message = decoded.message().into_owned().into();
        assert_eq!(format!("{decoded:?}"), format!("{parsed:?}"));
        assert_eq!(decoded.id, "0637|r\"1");
        assert_eq!(decoded.severity, crate::event::Severity::Error);
        assert_eq!(decoded.host.as_deref(), Some("web_0"));
    }
}
