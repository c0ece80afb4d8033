//! An event's body as records: Azure's `{"records": [...]}` envelope, each record of which becomes
//! one event of the kind its category says.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::EventKind;
use crate::normalise::{RawRecord, Schema};
use crate::source::Malformed;

/// Where an event sits in its hub: what makes the id of each of its records.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub partition: &'a str,
    pub sequence: i64,
}

impl Position<'_> {
    fn id(&self, index: usize) -> String {
        format!("{}:{}:{index}", self.partition, self.sequence)
    }

    fn origin(&self) -> String {
        format!("partition {} sequence {}", self.partition, self.sequence)
    }
}

/// The kind of a streamed record, by its category: Entra ID's sign-in and audit logs and the
/// Activity Log keep the folders their REST sources use; everything else is a resource log.
fn kind_of(category: &str) -> EventKind {
    match category {
        "SignInLogs"
        | "NonInteractiveUserSignInLogs"
        | "ServicePrincipalSignInLogs"
        | "ManagedIdentitySignInLogs" => EventKind::SignIn,
        "AuditLogs" => EventKind::DirectoryAudit,
        "Administrative" | "Security" | "ServiceHealth" | "Alert" | "Recommendation" | "Policy"
        | "Autoscale" | "ResourceHealth" => EventKind::ActivityLog,
        _ => EventKind::DiagnosticLog,
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
}

/// Appends the records of one event body. A body that is one record rather than an envelope is
/// taken as that record; anything else goes to the dead-letter file whole.
pub fn split(
    body: &[u8],
    at: Position<'_>,
    records: &mut Vec<RawRecord>,
    malformed: &mut Vec<Malformed>,
) {
    let reject = |reason: String| Malformed {
        origin: at.origin(),
        reason,
        payload: String::from_utf8_lossy(body).into_owned(),
    };
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => return malformed.push(reject(format!("the body is not UTF-8: {e}"))),
    };
    let listed = match serde_json::from_str::<Envelope>(text) {
        Ok(envelope) => envelope.records,
        Err(envelope_error) => match serde_json::from_str::<&RawValue>(text) {
            Ok(one) if one.get().starts_with('{') => vec![one],
            Ok(_) => {
                return malformed.push(reject(
                    "the body is JSON but neither a {\"records\": [...]} envelope nor a record"
                        .into(),
                ));
            }
            Err(_) => {
                return malformed.push(reject(format!(
                    "the body is not a {{\"records\": [...]}} envelope: {envelope_error}"
                )));
            }
        },
    };
    for (index, raw) in listed.into_iter().enumerate() {
        let kind = match serde_json::from_str::<Head>(raw.get()) {
            Ok(head) => head
                .category
                .as_deref()
                .map_or(EventKind::DiagnosticLog, kind_of),
            // Not an object: the normaliser rejects it, with its id, to the dead-letter file.
            Err(_) => EventKind::DiagnosticLog,
        };
        records.push(RawRecord {
            kind,
            raw: raw.into(),
            id_hint: Some(at.id(index)),
            wad_columns: None,
            schema: Schema::Streamed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Position<'static> = Position {
        partition: "3",
        sequence: 41,
    };

    fn split_all(body: &str) -> (Vec<RawRecord>, Vec<Malformed>) {
        let (mut records, mut malformed) = (Vec::new(), Vec::new());
        split(body.as_bytes(), AT, &mut records, &mut malformed);
        (records, malformed)
    }

    #[test]
    fn each_record_of_an_envelope_is_an_event_of_its_categorys_kind() {
        let (records, malformed) = split_all(
            r#"{"records": [
                {"time": "2026-12-01T10:00:00Z", "category": "Administrative"},
                {"time": "2026-12-01T10:00:01Z", "category": "NonInteractiveUserSignInLogs", "properties": {}},
                {"time": "2026-12-01T10:00:02Z", "category": "AuditLogs"},
                {"time": "2026-12-01T10:00:03Z", "category": "AuditEvent"},
                {"time": "2026-12-01T10:00:04Z"}
            ]}"#,
        );
        assert!(malformed.is_empty());
        let kinds: Vec<EventKind> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::ActivityLog,
                EventKind::SignIn,
                EventKind::DirectoryAudit,
                EventKind::DiagnosticLog,
                EventKind::DiagnosticLog,
            ]
        );
        let ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r.id_hint.as_deref())
            .collect();
        assert_eq!(ids, ["3:41:0", "3:41:1", "3:41:2", "3:41:3", "3:41:4"]);
        assert!(records.iter().all(|r| r.schema == Schema::Streamed));
    }

    #[test]
    fn a_bare_record_is_one_event_and_anything_else_is_dead_lettered_whole() {
        let (records, _) =
            split_all(r#"{"time": "2026-12-01T10:00:00Z", "category": "AuditLogs"}"#);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, EventKind::DirectoryAudit);
        for body in ["[1, 2]", "{\"records\": [", "\u{0}garbage"] {
            let (records, malformed) = split_all(body);
            assert!(records.is_empty(), "{body}");
            assert_eq!(malformed.len(), 1, "{body}");
            assert_eq!(malformed[0].origin, "partition 3 sequence 41");
            assert_eq!(malformed[0].payload, body);
        }
    }
}
