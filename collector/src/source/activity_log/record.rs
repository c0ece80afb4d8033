//! Activity Log records (Azure Monitor `eventtypes/management/values`) as events.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::RawJson;
use crate::normalise::{
    Localized, NormaliseContext, NormaliseError, last_segment, parse, placeholder_raw,
    subscription_of, time,
};

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

pub(crate) fn normalise(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
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
