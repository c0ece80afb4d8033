//! ARM's `Microsoft.Authorization` provider at subscription scope: role assignments (PUT, GET,
//! DELETE), role definitions and the caller's effective `permissions`, with the errors ARM gives
//! for duplicates, missing rights and principals Entra has not replicated yet.

// Handlers return early with a finished error response; boxing every one would add only noise.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use azlog_operator::authorization::role;
use serde_json::{Value, json};

use super::arm::{arm_error, authorize, require_api_version};
use super::state::{Api, RoleAssignment};
use super::{Shared, filter};

/// A role definition as the fake knows it.
#[derive(Debug)]
pub struct Definition {
    pub role: role::BuiltInRole,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

/// The built-in roles, with the actions that matter here as Azure defines them.
const DEFINITIONS: &[Definition] = &[
    Definition {
        role: role::READER,
        actions: &["*/read"],
        not_actions: &[],
    },
    Definition {
        role: role::SECURITY_READER,
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Security/*/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    Definition {
        role: role::MONITORING_READER,
        actions: &["*/read", "Microsoft.Support/*"],
        not_actions: &[],
    },
    Definition {
        role: role::CONTRIBUTOR,
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    },
    Definition {
        role: role::OWNER,
        actions: &["*"],
        not_actions: &[],
    },
    Definition {
        role: role::USER_ACCESS_ADMINISTRATOR,
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
    },
];

/// The definition of the role with GUID `id`.
pub fn definition(id: &str) -> Option<&'static Definition> {
    DEFINITIONS
        .iter()
        .find(|d| d.role.id.eq_ignore_ascii_case(id))
}

const WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
const READ: &str = "Microsoft.Authorization/roleAssignments/read";
const DEFINITIONS_READ: &str = "Microsoft.Authorization/roleDefinitions/read";

fn definition_id(subscription: &str, id: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{id}")
}

fn assignment_body(assignment: &RoleAssignment) -> Value {
    json!({
        "id": assignment.id(),
        "type": "Microsoft.Authorization/roleAssignments",
        "name": assignment.name,
        "properties": {
            "roleDefinitionId": definition_id(&assignment.subscription, &assignment.role),
            "principalId": assignment.principal_id,
            "principalType": "ServicePrincipal",
            "scope": format!("/subscriptions/{}", assignment.subscription),
            "condition": null,
            "conditionVersion": null,
        }
    })
}

fn definition_body(subscription: &str, definition: &Definition) -> Value {
    json!({
        "id": definition_id(subscription, definition.role.id),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": definition.role.id,
        "properties": {
            "roleName": definition.role.name,
            "type": "BuiltInRole",
            "permissions": [{"actions": definition.actions, "notActions": definition.not_actions, "dataActions": [], "notDataActions": []}],
            "assignableScopes": ["/"],
        }
    })
}

/// The checks every call here starts with: api-version, then [`authorize`]. Answers the
/// caller's client id.
fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    subscription: &str,
    action: Option<&str>,
) -> Result<String, Response> {
    if let Some(response) = require_api_version(query) {
        return Err(response);
    }
    authorize(shared, headers, subscription, action)
}

/// Serves one request: the scripted fault, else `answer`; recorded either way.
async fn serve(
    shared: &Shared,
    query: &HashMap<String, String>,
    answer: impl FnOnce() -> Result<Response, Response>,
) -> Response {
    let raw_query = super::query_text(query);
    if let Some(response) = super::fault(shared, Api::Authorization).await {
        return super::record(shared, Api::Authorization, &raw_query, response);
    }
    let response = answer().unwrap_or_else(|refusal| refusal);
    super::record(shared, Api::Authorization, &raw_query, response)
}

type AssignmentPath = Path<(String, String)>;

pub async fn put_assignment(
    State(shared): State<Shared>,
    Path((subscription, name)): AssignmentPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    serve(&shared, &query, || {
        admit(&shared, &headers, &query, &subscription, Some(WRITE))?;
        let bad = |code: &str, message: String| arm_error(StatusCode::BAD_REQUEST, code, &message);
        let body: Value = serde_json::from_str(&body)
            .map_err(|e| bad("InvalidRequestContent", format!("The request content was invalid and could not be deserialized: {e}")))?;
        let properties = &body["properties"];
        let role_id = properties["roleDefinitionId"].as_str().unwrap_or_default();
        let principal_id = properties["principalId"].as_str().unwrap_or_default().to_owned();
        let role = role_id.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        if definition(&role).is_none() {
            return Err(bad(
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{role}' does not exist."),
            ));
        }
        let mut state = super::lock(&shared);
        let tenant = state.subscriptions[&subscription].tenant_id.clone();
        if !state.principal(&principal_id).is_some_and(|(_, i)| i.replicated) {
            return Err(bad(
                "PrincipalNotFound",
                format!("Principal {} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype", principal_id.replace('-', "")),
            ));
        }
        let wanted = RoleAssignment {
            name: name.to_ascii_lowercase(),
            subscription: subscription.clone(),
            role,
            principal_id: principal_id.to_ascii_lowercase(),
        };
        if let Some(same_name) = state.role_assignments.iter().find(|a| a.subscription == subscription && a.name == wanted.name) {
            if *same_name != wanted {
                return Err(bad(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.".to_owned(),
                ));
            }
            return Ok((StatusCode::CREATED, axum::Json(assignment_body(same_name))).into_response());
        }
        if state.role_assignments.iter().any(|a| a.subscription == wanted.subscription && a.role == wanted.role && a.principal_id == wanted.principal_id) {
            return Err(arm_error(StatusCode::CONFLICT, "RoleAssignmentExists", "The role assignment already exists."));
        }
        let body = assignment_body(&wanted);
        state.role_assignments.push(wanted);
        Ok((StatusCode::CREATED, axum::Json(body)).into_response())
    })
    .await
}

/// GET or DELETE of one role assignment.
pub async fn read_or_delete_assignment(
    State(shared): State<Shared>,
    method: axum::http::Method,
    Path((subscription, name)): AssignmentPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let delete = method == axum::http::Method::DELETE;
    serve(&shared, &query, || {
        admit(
            &shared,
            &headers,
            &query,
            &subscription,
            Some(if delete { DELETE } else { READ }),
        )?;
        let mut state = super::lock(&shared);
        let found = state
            .role_assignments
            .iter()
            .position(|a| a.subscription == subscription && a.name.eq_ignore_ascii_case(&name));
        match (found, delete) {
            (Some(index), true) => {
                let removed = state.role_assignments.remove(index);
                Ok(axum::Json(assignment_body(&removed)).into_response())
            }
            (Some(index), false) => {
                Ok(axum::Json(assignment_body(&state.role_assignments[index])).into_response())
            }
            // ARM answers a DELETE of what is not there with 204.
            (None, true) => Ok(StatusCode::NO_CONTENT.into_response()),
            (None, false) => Err(arm_error(
                StatusCode::NOT_FOUND,
                "RoleAssignmentNotFound",
                &format!("The role assignment '{name}' is not found."),
            )),
        }
    })
    .await
}

/// `permissions`: the caller's own effective actions on the subscription, one entry per role.
pub async fn permissions(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &query, || {
        let client_id = admit(&shared, &headers, &query, &subscription, None)?;
        let value: Vec<Value> = super::lock(&shared)
            .permissions(&client_id, &subscription)
            .into_iter()
            .map(|(actions, not_actions)| json!({"actions": actions, "notActions": not_actions, "dataActions": [], "notDataActions": []}))
            .collect();
        Ok(axum::Json(json!({ "value": value })).into_response())
    })
    .await
}

/// `roleDefinitions`, all or `$filter=roleName eq '<name>'`.
pub async fn role_definitions(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &query, || {
        admit(
            &shared,
            &headers,
            &query,
            &subscription,
            Some(DEFINITIONS_READ),
        )?;
        let clauses = filter::parse(query.get("$filter").map(String::as_str).unwrap_or_default())
            .unwrap_or_default();
        let name = clauses
            .iter()
            .find(|c| c.field == "roleName" && c.op == "eq")
            .map(|c| c.value.clone());
        let value: Vec<Value> = DEFINITIONS
            .iter()
            .filter(|d| name.as_deref().is_none_or(|n| d.role.name == n))
            .map(|d| definition_body(&subscription, d))
            .collect();
        Ok(axum::Json(json!({ "value": value })).into_response())
    })
    .await
}

pub async fn role_definition(
    State(shared): State<Shared>,
    Path((subscription, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &query, || {
        admit(
            &shared,
            &headers,
            &query,
            &subscription,
            Some(DEFINITIONS_READ),
        )?;
        definition(&id)
            .map(|d| axum::Json(definition_body(&subscription, d)).into_response())
            .ok_or_else(|| {
                arm_error(
                    StatusCode::NOT_FOUND,
                    "RoleDefinitionDoesNotExist",
                    &format!("The specified role definition with ID '{id}' does not exist."),
                )
            })
    })
    .await
}
