//! Entra ID sign-ins (Graph `auditLogs/signIns`) as events.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::RawJson;
use crate::normalise::{NormaliseContext, NormaliseError, parse, placeholder_raw, time};

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

pub(crate) fn normalise(raw: &RawJson, ctx: &NormaliseContext) -> Result<Event, NormaliseError> {
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
