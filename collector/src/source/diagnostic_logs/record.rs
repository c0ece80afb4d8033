//! Resource logs (the Azure Monitor common schema, as diagnostic settings archive them) as events.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::RawJson;
use crate::normalise::{
    NormaliseContext, NormaliseError, last_segment, parse, placeholder_raw, subscription_of, time,
};

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

/// A record in the common schema as an event of `kind`: resource logs, and the Activity Log as
/// diagnostic settings stream it.
pub(crate) fn normalise(
    kind: EventKind,
    raw: &RawJson,
    id_hint: Option<String>,
    ctx: &NormaliseContext,
) -> Result<Event, NormaliseError> {
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
