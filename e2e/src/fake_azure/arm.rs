//! Azure Resource Manager: subscriptions, the Activity Log (`eventtypes/management/values`) and
//! Defender for Cloud alerts, with `nextLink` paging, bearer checks and ARM's error bodies.

// Handlers return early with a finished error response; boxing every one would add only noise.
#![allow(clippy::result_large_err)]

use azlog_collector::azure::encode_query;
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::{Api, Audience};
use super::{AuthFailure, Shared, filter};

pub fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{message}\""
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
    }
    response
}

pub(super) fn auth_error(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Missing => arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        AuthFailure::Unknown => arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ),
        AuthFailure::Expired => arm_error(
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        AuthFailure::WrongAudience => arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource.",
        ),
    }
}

pub(super) fn require_api_version(query: &HashMap<String, String>) -> Option<Response> {
    (!query.contains_key("api-version")).then(|| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    })
}

/// Checks the caller's token, that `subscription` exists and that the caller may perform
/// `action` there (any caller, when None); answers the caller's client id.
pub(super) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    subscription: &str,
    action: Option<&str>,
) -> Result<String, Response> {
    let client_id = super::authenticate(shared, headers, Audience::Arm).map_err(auth_error)?;
    let state = super::lock(shared);
    if !state.subscriptions.contains_key(subscription) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{subscription}' could not be found."),
        ));
    }
    if let Some(action) = action
        && !state.may(&client_id, subscription, action)
    {
        let object_id = state
            .identities
            .get(&client_id)
            .map(|i| i.object_id.clone())
            .unwrap_or_default();
        return Err(arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client '{client_id}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '/subscriptions/{subscription}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        ));
    }
    Ok(client_id)
}

fn with_read_budget(remaining: Option<i64>, mut response: Response) -> Response {
    if let Some(remaining) = remaining
        && let Ok(value) = HeaderValue::from_str(&remaining.to_string())
    {
        response
            .headers_mut()
            .insert("x-ms-ratelimit-remaining-subscription-reads", value);
    }
    response
}

/// ARM's answer to a read beyond the subscription's budget.
fn throttled(subscription: &str, client_id: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = arm_error(
        StatusCode::TOO_MANY_REQUESTS,
        "SubscriptionRequestsThrottled",
        &format!(
            "Number of 'read' requests for subscription '{subscription}' actor '{client_id}' exceeded. Please try again after '{seconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information."
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert("retry-after", value);
    }
    with_read_budget(Some(0), response)
}

/// The page after skip token `token`, or ARM's answer to a token it does not know.
pub(super) fn next_page(
    shared: &Shared,
    token: &str,
) -> Result<(Vec<Value>, Option<String>), Response> {
    super::lock(shared).next_page(token).ok_or_else(|| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidSkipToken",
            "The skip token is invalid or has expired.",
        )
    })
}

/// A page of `{"value": [...], "nextLink": ...}`, from a snapshot taken at the first page.
fn paged(
    shared: &Shared,
    query: &HashMap<String, String>,
    base_link: &str,
    first: impl FnOnce() -> Result<Vec<Value>, Response>,
) -> Response {
    let page = match query.get("$skipToken") {
        Some(token) => match next_page(shared, token) {
            Ok(page) => page,
            Err(response) => return response,
        },
        None => match first() {
            Ok(items) => {
                let mut state = super::lock(shared);
                let size = state.page_size;
                state.first_page(items, size)
            }
            Err(response) => return response,
        },
    };
    let (value, token) = page;
    let mut body = json!({ "value": value });
    if let Some(token) = token {
        body["nextLink"] = json!(format!("{base_link}&$skipToken={}", encode_query(&token)));
    }
    axum::Json(body).into_response()
}

/// What differs between the per-subscription listings.
struct Listing {
    api: Api,
    /// The RBAC action ARM names when the caller lacks it.
    action: &'static str,
    /// Path below `/subscriptions/{id}`.
    path: &'static str,
}

const ACTIVITY_LOG: Listing = Listing {
    api: Api::ActivityLog,
    action: "microsoft.insights/eventtypes/values/read",
    path: "providers/Microsoft.Insights/eventtypes/management/values",
};

const SECURITY_ALERTS: Listing = Listing {
    api: Api::SecurityAlerts,
    action: "Microsoft.Security/locations/alerts/read",
    path: "providers/Microsoft.Security/alerts",
};

/// A per-subscription listing request being answered, counted while it is.
struct Answering<'a> {
    shared: &'a Shared,
    subscription: &'a str,
}

impl<'a> Answering<'a> {
    fn start(shared: &'a Shared, subscription: &'a str) -> Answering<'a> {
        let mut state = super::lock(shared);
        *state
            .listing_in_flight
            .entry(subscription.to_owned())
            .or_default() += 1;
        let one = state.listing_in_flight[subscription];
        let all = state.listing_in_flight.values().sum();
        let (most_one, most_all) = state.most_in_flight;
        state.most_in_flight = (most_one.max(one), most_all.max(all));
        Answering {
            shared,
            subscription,
        }
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if let Some(n) = super::lock(self.shared)
            .listing_in_flight
            .get_mut(self.subscription)
        {
            *n -= 1;
        }
    }
}

/// The common shape of a per-subscription listing: scripted fault, api-version, authorization,
/// paging, the read-budget header, and the request log. `first` computes the whole listing.
async fn serve_listing(
    shared: &Shared,
    listing: &Listing,
    subscription: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    extra_query: &str,
    first: impl FnOnce() -> Result<Vec<Value>, Response>,
) -> Response {
    serve_read(shared, listing, subscription, query, headers, || {
        let base = format!(
            "{}/subscriptions/{subscription}/{}?api-version={}{extra_query}",
            super::base_url(shared),
            listing.path,
            encode_query(
                query
                    .get("api-version")
                    .map(String::as_str)
                    .unwrap_or_default()
            ),
        );
        paged(shared, query, &base, first)
    })
    .await
}

/// A read of one subscription's `listing` data: scripted fault, api-version, authorization, the
/// read budget and its header, and the request log around what `answer` answers.
async fn serve_read(
    shared: &Shared,
    listing: &Listing,
    subscription: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    answer: impl FnOnce() -> Response,
) -> Response {
    let raw_query = super::query_text(query);
    let record = |response| {
        super::record_for(
            shared,
            listing.api,
            Some(subscription),
            &raw_query,
            response,
        )
    };
    let _answering = Answering::start(shared, subscription);
    if let Some(response) = super::fault(shared, listing.api).await {
        return record(response);
    }
    let response = (|| {
        if let Some(response) = require_api_version(query) {
            return response;
        }
        let client_id = match authorize(shared, headers, subscription, Some(listing.action)) {
            Ok(client_id) => client_id,
            Err(response) => return response,
        };
        let budget = super::lock(shared)
            .subscriptions
            .get_mut(subscription)
            .map(|sub| sub.reads.take());
        let remaining = match budget {
            Some(Ok(remaining)) => Some(remaining),
            Some(Err(wait)) => return throttled(subscription, &client_id, wait),
            None => None,
        };
        with_read_budget(remaining, answer())
    })();
    record(response)
}

pub async fn activity_log(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let filter_text = query.get("$filter").cloned().unwrap_or_default();
    let extra = format!("&$filter={}", encode_query(&filter_text));
    serve_listing(
        &shared,
        &ACTIVITY_LOG,
        &subscription,
        &query,
        &headers,
        &extra,
        || {
            let bad = |message: String| arm_error(StatusCode::BAD_REQUEST, "BadRequest", &message);
            let clauses = filter::parse(&filter_text).map_err(bad)?;
            let range = filter::time_range(&clauses, "eventTimestamp").map_err(bad)?;
            if range.0.is_none() {
                return Err(bad(
                    "The $filter must contain eventTimestamp ge '<time>'.".into()
                ));
            }
            let state = super::lock(&shared);
            let events = state
                .subscriptions
                .get(&subscription)
                .map(|s| s.activity.as_slice())
                .unwrap_or_default();
            let mut matching: Vec<Value> = events
                .iter()
                .filter(|e| filter::within(e["eventTimestamp"].as_str(), range))
                .filter(|e| {
                    clauses
                        .iter()
                        .filter(|c| c.op == "eq")
                        .all(|c| match c.field.as_str() {
                            "resourceGroupName" => e["resourceGroupName"]
                                .as_str()
                                .is_some_and(|v| v.eq_ignore_ascii_case(&c.value)),
                            "resourceId" | "resourceUri" => e["resourceId"]
                                .as_str()
                                .is_some_and(|v| v.eq_ignore_ascii_case(&c.value)),
                            _ => true,
                        })
                })
                .cloned()
                .collect();
            // The Activity Log lists newest first.
            matching.sort_by(|a, b| {
                b["eventTimestamp"]
                    .as_str()
                    .cmp(&a["eventTimestamp"].as_str())
            });
            Ok(matching)
        },
    )
    .await
}

pub async fn security_alerts(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // The alerts API has no $filter: it always lists everything.
    serve_listing(
        &shared,
        &SECURITY_ALERTS,
        &subscription,
        &query,
        &headers,
        "",
        || {
            Ok(super::lock(&shared)
                .subscriptions
                .get(&subscription)
                .map(|s| s.alerts.clone())
                .unwrap_or_default())
        },
    )
    .await
}

pub async fn subscriptions(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let raw_query = super::query_text(&query);
    if let Some(response) = super::fault(&shared, Api::Subscriptions).await {
        return super::record(&shared, Api::Subscriptions, &raw_query, response);
    }
    let response = (|| {
        if let Some(response) = require_api_version(&query) {
            return response;
        }
        let client_id = match super::authenticate(&shared, &headers, Audience::Arm) {
            Ok(id) => id,
            Err(failure) => return auth_error(failure),
        };
        let state = super::lock(&shared);
        let visible: Vec<Value> = state
            .subscriptions
            .iter()
            .filter(|(id, _)| !state.permissions(&client_id, id).is_empty())
            .map(|(id, s)| {
                json!({
                    "id": format!("/subscriptions/{id}"),
                    "authorizationSource": "RoleBased",
                    "subscriptionId": id,
                    "tenantId": s.tenant_id,
                    "displayName": s.display_name,
                    "state": "Enabled",
                    "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
                })
            })
            .collect();
        let count = visible.len();
        axum::Json(json!({"value": visible, "count": {"type": "Total", "value": count}}))
            .into_response()
    })();
    super::record(&shared, Api::Subscriptions, &raw_query, response)
}

/// One Defender for Cloud alert, by its id.
pub async fn security_alert(
    State(shared): State<Shared>,
    Path((subscription, _group, _location, name)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve_read(
        &shared,
        &SECURITY_ALERTS,
        &subscription,
        &query,
        &headers,
        || {
            let alert = super::lock(&shared)
                .subscriptions
                .get(&subscription)
                .and_then(|s| {
                    s.alerts
                        .iter()
                        .find(|a| {
                            a["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
                        })
                        .cloned()
                });
            match alert {
                Some(alert) => axum::Json(alert).into_response(),
                None => arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!("The alert '{name}' was not found."),
                ),
            }
        },
    )
    .await
}
