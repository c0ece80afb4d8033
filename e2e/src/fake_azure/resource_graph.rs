//! Azure Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): the
//! `securityresources` table's Defender for Cloud alerts, over the subscriptions the request names
//! and the caller may read, paged with `$skipToken`. It understands the queries azlog sends — a
//! `type` filter and a projection of each alert's id and status — and refuses any other as ARG
//! refuses a query it cannot parse.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::arm::{authorize, next_page, require_api_version};
use super::state::Api;

const ALERTS: &str = "microsoft.security/locations/alerts";
/// ARG answers 100 rows unless asked for more, and at most 1000.
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

/// A query the fake understands: the table's alerts, whole or as (id, status, time generated).
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Alerts,
    IdAndStatus,
}

/// Parses `securityresources | where type =~ '<alerts>' [| project id, status = …, generated = …]`.
fn parse(query: &str) -> Result<Shape, String> {
    let mut clauses = query
        .split('|')
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "));
    if !clauses
        .next()
        .is_some_and(|table| table.eq_ignore_ascii_case("securityresources"))
    {
        return Err("the fake serves the securityresources table only".into());
    }
    let mut shape = Shape::Alerts;
    let mut typed = false;
    for clause in clauses {
        let lower = clause.to_ascii_lowercase();
        if lower == format!("where type =~ '{ALERTS}'")
            || lower == format!("where type == '{ALERTS}'")
        {
            typed = true;
        } else if lower.starts_with("project id, status = tostring(") {
            shape = Shape::IdAndStatus;
        } else {
            return Err(format!("unsupported clause '{clause}'"));
        }
    }
    if !typed {
        return Err(format!("the query must filter on type =~ '{ALERTS}'"));
    }
    Ok(shape)
}

fn invalid_query(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {
            "code": "BadRequest",
            "message": "Please provide below info when asking for support: timestamp = 2026-12-02T00:00:00.0000000Z, correlationId = 00000000-0000-0000-0000-000000000000.",
            "details": [{"code": "InvalidQuery", "message": format!("Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying. {message}")}],
        }})),
    )
        .into_response()
}

pub async fn resources(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let raw_query = super::query_text(&query);
    if let Some(response) = super::fault(&shared, Api::ResourceGraph).await {
        return super::record_for(&shared, Api::ResourceGraph, None, &raw_query, response);
    }
    let response = answer(&shared, &query, &headers, &body);
    super::record_for(&shared, Api::ResourceGraph, None, &raw_query, response)
}

fn answer(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    if let Some(response) = require_api_version(query) {
        return response;
    }
    let options = &body["options"];
    let top = options["$top"]
        .as_u64()
        .map_or(DEFAULT_TOP, |n| n as usize)
        .clamp(1, MAX_TOP);
    let page = match options["$skipToken"].as_str() {
        Some(token) => match next_page(shared, token) {
            Ok(page) => page,
            Err(response) => return response,
        },
        None => {
            let shape = match parse(body["query"].as_str().unwrap_or_default()) {
                Ok(shape) => shape,
                Err(message) => return invalid_query(&message),
            };
            let mut rows = Vec::new();
            for subscription in body["subscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                // Resource Graph answers with what the caller may read and leaves the rest out.
                match authorize(
                    shared,
                    headers,
                    subscription,
                    Some("Microsoft.Security/locations/alerts/read"),
                ) {
                    Ok(_) => {}
                    Err(response) if response.status() == StatusCode::UNAUTHORIZED => {
                        return response;
                    }
                    Err(_) => continue,
                }
                let alerts = super::lock(shared)
                    .subscriptions
                    .get(subscription)
                    .map(|s| s.alerts.clone())
                    .unwrap_or_default();
                rows.extend(
                    alerts
                        .into_iter()
                        .map(|alert| row(alert, subscription, &shape)),
                );
            }
            super::lock(shared).first_page(rows, top)
        }
    };
    let (data, token) = page;
    let mut answer = json!({
        "count": data.len(),
        "resultTruncated": "false",
        "facets": [],
    });
    answer["data"] = Value::Array(data);
    if let Some(token) = token {
        answer["$skipToken"] = json!(token);
    }
    axum::Json(answer).into_response()
}

/// An alert as a `securityresources` row: the resource with ARG's own columns, or the projection.
fn row(mut alert: Value, subscription: &str, shape: &Shape) -> Value {
    match shape {
        Shape::IdAndStatus => json!({
            "id": alert["id"],
            "status": alert["properties"]["status"],
            "generated": alert["properties"]["timeGeneratedUtc"],
        }),
        Shape::Alerts => {
            alert["subscriptionId"] = json!(subscription);
            alert["type"] = json!(ALERTS);
            alert
        }
    }
}
