//! Microsoft Graph: `auditLogs/directoryAudits` and `auditLogs/signIns`, with `$filter` on the record
//! time (unquoted), `$top`, `@odata.nextLink` paging and Graph's error bodies.

use azlog_collector::azure::encode_query;
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::{Api, Audience};
use super::{AuthFailure, Shared, filter};

pub fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": "00000000-0000-0000-0000-000000000000",
                "client-request-id": "00000000-0000-0000-0000-000000000000",
            }
        }
    });
    (status, axum::Json(body)).into_response()
}

pub(super) fn auth_error(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Missing => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ),
        AuthFailure::Unknown | AuthFailure::WrongAudience => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ),
        AuthFailure::Expired => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ),
    }
}

/// The two audit listings differ only in their path, time field and which records they serve.
struct Listing {
    api: Api,
    path: &'static str,
    time_field: &'static str,
}

const DIRECTORY_AUDITS: Listing = Listing {
    api: Api::DirectoryAudits,
    path: "auditLogs/directoryAudits",
    time_field: "activityDateTime",
};

const SIGN_INS: Listing = Listing {
    api: Api::SignIns,
    path: "auditLogs/signIns",
    time_field: "createdDateTime",
};

pub async fn directory_audits(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &DIRECTORY_AUDITS, &query, &headers).await
}

pub async fn sign_ins(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &SIGN_INS, &query, &headers).await
}

async fn list(
    shared: &Shared,
    listing: &Listing,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let raw_query = super::query_text(query);
    if let Some(response) = super::fault(shared, listing.api).await {
        return super::record(shared, listing.api, &raw_query, response);
    }
    let response = serve(shared, listing, query, headers);
    super::record(shared, listing.api, &raw_query, response)
}

fn serve(
    shared: &Shared,
    listing: &Listing,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let client_id = match super::authenticate(shared, headers, Audience::Graph) {
        Ok(id) => id,
        Err(failure) => return auth_error(failure),
    };
    if !super::lock(shared).has_graph_permission(&client_id, "AuditLog.Read.All") {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let top = match query.get("$top").map(|t| t.parse::<usize>()) {
        None => None,
        Some(Ok(top)) if (1..=999).contains(&top) => Some(top),
        Some(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Invalid value specified for query parameter '$top'; it must be between 1 and 999.",
            );
        }
    };
    let page = match query.get("$skiptoken") {
        Some(token) => match super::lock(shared).next_page(token) {
            Some(page) => page,
            None => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "The specified skip token is invalid or expired.",
                );
            }
        },
        None => {
            let filter_text = query.get("$filter").cloned().unwrap_or_default();
            let range = if filter_text.is_empty() {
                (None, None)
            } else {
                match filter::parse(&filter_text)
                    .and_then(|c| filter::time_range(&c, listing.time_field))
                {
                    Ok(range) => range,
                    Err(message) => {
                        return graph_error(
                            StatusCode::BAD_REQUEST,
                            "Request_UnsupportedQuery",
                            &message,
                        );
                    }
                }
            };
            let mut state = super::lock(shared);
            let records = match listing.api {
                Api::SignIns => &state.sign_ins,
                _ => &state.directory_audits,
            };
            let mut matching: Vec<Value> = records
                .iter()
                .filter(|r| filter::within(r[listing.time_field].as_str(), range))
                .cloned()
                .collect();
            // Graph lists audit records newest first.
            matching.sort_by(|a, b| {
                b[listing.time_field]
                    .as_str()
                    .cmp(&a[listing.time_field].as_str())
            });
            // $top asks for a page size; the configured page size is the server's own limit, so
            // tests can force paging whatever the client asks for.
            let size = top.unwrap_or(usize::MAX).min(state.page_size);
            state.first_page(matching, size)
        }
    };
    let base = super::base_url(shared);
    let (value, token) = page;
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#{}", listing.path),
        "value": value,
    });
    if let Some(token) = token {
        body["@odata.nextLink"] = json!(format!(
            "{base}/v1.0/{}?$skiptoken={}",
            listing.path,
            encode_query(&token)
        ));
    }
    axum::Json(body).into_response()
}
