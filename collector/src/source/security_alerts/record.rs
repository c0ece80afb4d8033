//! Defender for Cloud alerts (`Microsoft.Security/alerts`) as events.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::RawJson;
use crate::normalise::{
    NormaliseContext, NormaliseError, last_segment, parse, placeholder_raw, subscription_of, time,
};

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

pub(crate) fn normalise(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
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
