//! The small subset of OData `$filter` the log APIs accept: clauses joined by `and`, each
//! `field op value`. ARM quotes values (`eventTimestamp ge '2026-01-01T00:00:00Z'`); Graph does not
//! (`activityDateTime ge 2026-01-01T00:00:00Z`).

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub field: String,
    pub op: String,
    pub value: String,
}

pub fn parse(filter: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    for part in split_and(filter) {
        let mut words = part.trim().splitn(3, ' ');
        let (Some(field), Some(op), Some(value)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!("invalid filter clause '{}'", part.trim()));
        };
        let op = op.to_ascii_lowercase();
        if !matches!(op.as_str(), "eq" | "ge" | "le" | "gt" | "lt") {
            return Err(format!("unsupported operator '{op}' in '{}'", part.trim()));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        clauses.push(Clause {
            field: field.to_owned(),
            op,
            value: value.to_owned(),
        });
    }
    Ok(clauses)
}

fn split_and(filter: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let lower = filter.to_ascii_lowercase();
    let mut start = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(" and ") {
        let at = search + found;
        // Inside a quoted value " and " is data, not a conjunction.
        if filter[start..at].matches('\'').count().is_multiple_of(2) {
            parts.push(&filter[start..at]);
            start = at + 5;
        }
        search = at + 5;
    }
    parts.push(&filter[start..]);
    parts
}

/// A time range (from, to); either end may be open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The time range a filter sets on `field`.
pub fn time_range(clauses: &[Clause], field: &str) -> Result<Range, String> {
    let (mut from, mut to) = (None, None);
    for clause in clauses
        .iter()
        .filter(|c| c.field.eq_ignore_ascii_case(field))
    {
        let time = DateTime::parse_from_rfc3339(&clause.value)
            .map_err(|_| format!("'{}' is not a valid time for {field}", clause.value))?
            .with_timezone(&Utc);
        match clause.op.as_str() {
            "ge" | "gt" => from = Some(time),
            "le" | "lt" => to = Some(time),
            other => return Err(format!("{field} does not support '{other}'")),
        }
    }
    Ok((from, to))
}

/// Whether a record's time is inside the range.
pub fn within(
    record_time: Option<&str>,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> bool {
    let Some(time) = record_time.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return false;
    };
    let time = time.with_timezone(&Utc);
    range.0.is_none_or(|from| time >= from) && range.1.is_none_or(|to| time <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_filters_with_quoted_values_parse() {
        let clauses = parse("eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp le '2026-01-02T00:00:00Z' and resourceGroupName eq 'a and b'").expect("parse");
        assert_eq!(clauses.len(), 3);
        assert_eq!(clauses[2].value, "a and b");
        let (from, to) = time_range(&clauses, "eventTimestamp").expect("range");
        assert!(from.is_some() && to.is_some());
    }

    #[test]
    fn graph_filters_with_bare_times_parse() {
        let clauses = parse("activityDateTime ge 2026-01-01T00:00:00Z").expect("parse");
        assert_eq!(clauses[0].value, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn nonsense_is_an_error() {
        assert!(parse("eventTimestamp").is_err());
        assert!(parse("eventTimestamp like 'x'").is_err());
        assert!(
            time_range(
                &parse("eventTimestamp ge 'yesterday'").expect("parse"),
                "eventTimestamp"
            )
            .is_err()
        );
    }
}
