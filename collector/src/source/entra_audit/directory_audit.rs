//! Entra ID directory audits (Graph `auditLogs/directoryAudits`) as events.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::RawJson;
use crate::normalise::{NormaliseContext, NormaliseError, parse, placeholder_raw, time};

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

pub(crate) fn normalise(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
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
