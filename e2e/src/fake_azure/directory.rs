//! Microsoft Graph's directory objects, as far as authorising azlog needs them: applications
//! (upsert by `uniqueName`, delete), service principals (by id, by `appId`, upsert), federated
//! identity credentials, `addPassword` / `removePassword`, and app role assignments on the
//! Microsoft Graph service principal (application permissions such as AuditLog.Read.All).
//!
//! Callers need Graph application permissions as Entra enforces them: Application.ReadWrite.All to
//! change applications, AppRoleAssignment.ReadWrite.All to grant app roles, Application.Read.All
//! (or either of those) to read.

// Handlers return early with a finished error response; boxing every one would add only noise.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use azlog_operator::authorization::graph::{AUDIT_LOG_READ_ALL, GRAPH_APP_ID};
use serde_json::{Value, json};

use super::Shared;
use super::graph::{auth_error, graph_error};
use super::state::{
    Api, AppRoleAssignment, Application, Audience, Identity, Password, State as Fake,
};

/// The Microsoft Graph service principal's object id in the fake tenant.
const GRAPH_SERVICE_PRINCIPAL: &str = "2f6b3a1c-94d0-4c55-8e0f-6f1d1c0a9a11";

/// Graph's application permissions the fake knows: name and app role id.
const APP_ROLES: &[(&str, &str)] = &[
    ("AuditLog.Read.All", AUDIT_LOG_READ_ALL),
    (
        "Application.Read.All",
        "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    ),
    (
        "Application.ReadWrite.All",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    ),
    (
        "AppRoleAssignment.ReadWrite.All",
        "06b708a9-e830-4db3-a914-8e69da51d44f",
    ),
    ("Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
];

fn app_role_name(id: &str) -> Option<&'static str> {
    APP_ROLES
        .iter()
        .find(|(_, i)| i.eq_ignore_ascii_case(id))
        .map(|(n, _)| *n)
}

const READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
];
const WRITE: &[&str] = &["Application.ReadWrite.All"];
const GRANT: &[&str] = &["AppRoleAssignment.ReadWrite.All"];

fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// `segment` as `name(key='value')`: the value, when the segment is that form.
fn alternate_key<'a>(segment: &'a str, name: &str, key: &str) -> Option<&'a str> {
    segment
        .strip_prefix(name)?
        .strip_prefix('(')?
        .strip_prefix(key)?
        .strip_prefix("='")?
        .strip_suffix("')")
}

fn application_body(app: &Application) -> Value {
    json!({
        "id": app.object_id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "uniqueName": app.unique_name,
        "signInAudience": "AzureADMyOrg",
        "passwordCredentials": app.passwords.iter().map(|p| json!({
            "keyId": p.key_id, "displayName": p.display_name, "endDateTime": p.end, "hint": p.secret.get(..3), "secretText": null,
        })).collect::<Vec<_>>(),
    })
}

fn service_principal_body(client_id: &str, identity: &Identity) -> Value {
    json!({
        "id": identity.object_id,
        "appId": client_id,
        "displayName": identity.display_name,
        "servicePrincipalType": "Application",
        "accountEnabled": true,
    })
}

fn graph_service_principal() -> Value {
    json!({
        "id": GRAPH_SERVICE_PRINCIPAL,
        "appId": GRAPH_APP_ID,
        "displayName": "Microsoft Graph",
        "servicePrincipalType": "Application",
        "appRoles": APP_ROLES.iter().map(|(name, id)| json!({"id": id, "value": name, "allowedMemberTypes": ["Application"], "isEnabled": true})).collect::<Vec<_>>(),
    })
}

fn assignment_body(a: &AppRoleAssignment) -> Value {
    json!({
        "id": a.id,
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceId": a.resource_id,
        "resourceDisplayName": "Microsoft Graph",
        "appRoleId": a.app_role_id,
    })
}

/// One request to a directory object: `method` on the path below `/v1.0/`.
pub async fn serve(
    State(shared): State<Shared>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let raw_query = format!("{method} {path}");
    if let Some(response) = super::fault(&shared, Api::Directory).await {
        return super::record(&shared, Api::Directory, &raw_query, response);
    }
    let response = match super::authenticate(&shared, &headers, Audience::Graph) {
        Err(failure) => auth_error(failure),
        Ok(caller) => {
            let body: Value = if body.trim().is_empty() {
                json!({})
            } else {
                match serde_json::from_str(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return super::record(
                            &shared,
                            Api::Directory,
                            &raw_query,
                            bad_request(&format!("Invalid JSON: {e}")),
                        );
                    }
                }
            };
            let upsert = headers
                .get("prefer")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("create-if-missing"));
            let segments: Vec<&str> = path.split('/').collect();
            let mut state = super::lock(&shared);
            let request = Request {
                caller: &caller,
                method: &method,
                body: &body,
                upsert,
            };
            answer(&mut state, &request, &segments).unwrap_or_else(|refusal| refusal)
        }
    };
    super::record(&shared, Api::Directory, &raw_query, response)
}

struct Request<'a> {
    caller: &'a str,
    method: &'a Method,
    body: &'a Value,
    upsert: bool,
}

impl Request<'_> {
    fn may(&self, state: &Fake, permissions: &[&str]) -> Result<(), Response> {
        if permissions
            .iter()
            .any(|p| state.has_graph_permission(self.caller, p))
        {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

// One arm per route keeps the whole surface in one place.
fn answer(
    state: &mut Fake,
    request: &Request<'_>,
    segments: &[&str],
) -> Result<Response, Response> {
    let method = request.method.clone();
    match (method, segments) {
        (Method::GET, [sp]) if alternate_key(sp, "servicePrincipals", "appId").is_some() => {
            request.may(state, READ)?;
            let app_id = alternate_key(sp, "servicePrincipals", "appId").unwrap_or_default();
            if app_id == GRAPH_APP_ID {
                return Ok(axum::Json(graph_service_principal()).into_response());
            }
            let identity = state
                .identities
                .get(app_id)
                .ok_or_else(|| not_found(app_id))?;
            Ok(axum::Json(service_principal_body(app_id, identity)).into_response())
        }
        (Method::PATCH, [sp]) if alternate_key(sp, "servicePrincipals", "appId").is_some() => {
            request.may(state, WRITE)?;
            let app_id = alternate_key(sp, "servicePrincipals", "appId")
                .unwrap_or_default()
                .to_owned();
            if state.identities.contains_key(&app_id) {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            if !request.upsert {
                return Err(not_found(&app_id));
            }
            let app = state.applications.get(&app_id).cloned().ok_or_else(|| bad_request(&format!("The appId '{app_id}' of the service principal does not reference a valid application object.")))?;
            let tenant_id = state
                .identities
                .get(request.caller)
                .map(|i| i.tenant_id.clone())
                .unwrap_or_default();
            let identity = Identity {
                tenant_id,
                object_id: state.next_guid(),
                display_name: app.display_name.clone(),
                secrets: Vec::new(),
                federated_subjects: Vec::new(),
                replicated: state.replicate_new_principals,
                graph_permissions: Default::default(),
            };
            let body = service_principal_body(&app_id, &identity);
            state.identities.insert(app_id, identity);
            Ok((StatusCode::CREATED, axum::Json(body)).into_response())
        }
        (Method::GET, ["servicePrincipals", id]) => {
            request.may(state, READ)?;
            if *id == GRAPH_SERVICE_PRINCIPAL {
                return Ok(axum::Json(graph_service_principal()).into_response());
            }
            let (client_id, identity) = state.principal(id).ok_or_else(|| not_found(id))?;
            Ok(axum::Json(service_principal_body(client_id, identity)).into_response())
        }
        (Method::GET, ["servicePrincipals", id, "appRoleAssignments"]) => {
            request.may(state, READ)?;
            let value: Vec<Value> = state
                .app_role_assignments
                .iter()
                .filter(|a| a.principal_id.eq_ignore_ascii_case(id))
                .map(assignment_body)
                .collect();
            Ok(axum::Json(json!({"value": value})).into_response())
        }
        (Method::POST, ["servicePrincipals", resource, "appRoleAssignedTo"]) => {
            request.may(state, GRANT)?;
            if *resource != GRAPH_SERVICE_PRINCIPAL {
                return Err(not_found(resource));
            }
            let principal_id = request.body["principalId"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let app_role_id = request.body["appRoleId"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let permission = app_role_name(&app_role_id).ok_or_else(|| {
                bad_request("Permission being assigned was not found on application")
            })?;
            let client_id = state
                .principal(&principal_id)
                .map(|(c, _)| c.clone())
                .ok_or_else(|| not_found(&principal_id))?;
            if state
                .app_role_assignments
                .iter()
                .any(|a| a.principal_id == principal_id && a.app_role_id == app_role_id)
            {
                return Err(bad_request(
                    "Permission being assigned already exists on the object",
                ));
            }
            let assignment = AppRoleAssignment {
                id: state.next_id("ara-"),
                principal_id,
                resource_id: GRAPH_SERVICE_PRINCIPAL.to_owned(),
                app_role_id,
            };
            let body = assignment_body(&assignment);
            state.app_role_assignments.push(assignment);
            if let Some(identity) = state.identities.get_mut(&client_id) {
                identity.graph_permissions.insert(permission.to_owned());
            }
            Ok((StatusCode::CREATED, axum::Json(body)).into_response())
        }
        (Method::DELETE, ["servicePrincipals", _, "appRoleAssignedTo", id]) => {
            request.may(state, GRANT)?;
            let index = state
                .app_role_assignments
                .iter()
                .position(|a| a.id == *id)
                .ok_or_else(|| not_found(id))?;
            let removed = state.app_role_assignments.remove(index);
            let still_granted = |s: &Fake| {
                s.app_role_assignments.iter().any(|a| {
                    a.principal_id == removed.principal_id && a.app_role_id == removed.app_role_id
                })
            };
            if !still_granted(state)
                && let Some(permission) = app_role_name(&removed.app_role_id)
                && let Some(client_id) = state
                    .principal(&removed.principal_id)
                    .map(|(c, _)| c.clone())
                && let Some(identity) = state.identities.get_mut(&client_id)
            {
                identity.graph_permissions.remove(permission);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, [app]) if alternate_key(app, "applications", "uniqueName").is_some() => {
            request.may(state, READ)?;
            let unique = alternate_key(app, "applications", "uniqueName").unwrap_or_default();
            let found = state
                .applications
                .values()
                .find(|a| a.unique_name.as_deref() == Some(unique))
                .ok_or_else(|| not_found(unique))?;
            Ok(axum::Json(application_body(found)).into_response())
        }
        (Method::PATCH, [app]) if alternate_key(app, "applications", "uniqueName").is_some() => {
            request.may(state, WRITE)?;
            let unique = alternate_key(app, "applications", "uniqueName")
                .unwrap_or_default()
                .to_owned();
            let display_name = request.body["displayName"].as_str().map(str::to_owned);
            if let Some(existing) = state
                .applications
                .values_mut()
                .find(|a| a.unique_name.as_deref() == Some(unique.as_str()))
            {
                if let Some(name) = display_name {
                    existing.display_name = name;
                }
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            if !request.upsert {
                return Err(not_found(&unique));
            }
            let app = Application {
                object_id: state.next_guid(),
                app_id: state.next_guid(),
                unique_name: Some(unique),
                display_name: display_name
                    .ok_or_else(|| bad_request("Property 'displayName' is required."))?,
                federated_credentials: Vec::new(),
                passwords: Vec::new(),
            };
            let body = application_body(&app);
            state.applications.insert(app.app_id.clone(), app);
            Ok((StatusCode::CREATED, axum::Json(body)).into_response())
        }
        (Method::GET, ["applications", id]) => {
            request.may(state, READ)?;
            Ok(axum::Json(application_body(application(state, id)?)).into_response())
        }
        (Method::DELETE, ["applications", id]) => {
            request.may(state, WRITE)?;
            let app_id = application(state, id)?.app_id.clone();
            state.applications.remove(&app_id);
            // Deleting an application deletes its service principal, and with it its role grants.
            if let Some(identity) = state.identities.remove(&app_id) {
                state
                    .app_role_assignments
                    .retain(|a| a.principal_id != identity.object_id);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, ["applications", id, "federatedIdentityCredentials"]) => {
            request.may(state, READ)?;
            let value = application(state, id)?.federated_credentials.clone();
            Ok(axum::Json(json!({"value": value})).into_response())
        }
        (Method::POST, ["applications", id, "federatedIdentityCredentials"]) => {
            request.may(state, WRITE)?;
            let credential = federated_credential(request.body)?;
            let fresh_id = state.next_guid();
            let app = application_mut(state, id)?;
            if app
                .federated_credentials
                .iter()
                .any(|c| c["name"] == credential["name"])
            {
                return Err(graph_error(
                    StatusCode::CONFLICT,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "FederatedIdentityCredential with name already exists.",
                ));
            }
            let mut credential = credential;
            credential["id"] = fresh_id.into();
            app.federated_credentials.push(credential.clone());
            Ok((StatusCode::CREATED, axum::Json(credential)).into_response())
        }
        (Method::POST, ["applications", id, "addPassword"]) => {
            request.may(state, WRITE)?;
            let key_id = state.next_guid();
            let secret = format!("{}~{}", state.next_id(""), state.next_id(""));
            let display_name = request.body["passwordCredential"]["displayName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let end = request.body["passwordCredential"]["endDateTime"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    (chrono::Utc::now() + chrono::Duration::days(730))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
            let app = application_mut(state, id)?;
            app.passwords.push(Password {
                key_id: key_id.clone(),
                display_name: display_name.clone(),
                secret: secret.clone(),
                end: end.clone(),
            });
            Ok(axum::Json(json!({"keyId": key_id, "displayName": display_name, "endDateTime": end, "secretText": secret, "hint": secret.get(..3)})).into_response())
        }
        (Method::POST, ["applications", id, "removePassword"]) => {
            request.may(state, WRITE)?;
            let key_id = request.body["keyId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let app = application_mut(state, id)?;
            let index = app
                .passwords
                .iter()
                .position(|p| p.key_id == key_id)
                .ok_or_else(|| {
                    bad_request(&format!(
                        "No password credential found with keyId '{key_id}'."
                    ))
                })?;
            app.passwords.remove(index);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Resource not found for the segment.",
        )),
    }
}

/// The application `id` names: its object id, or `applications(uniqueName='…')`'s key.
fn application<'a>(state: &'a Fake, id: &str) -> Result<&'a Application, Response> {
    state
        .applications
        .values()
        .find(|a| a.object_id.eq_ignore_ascii_case(id))
        .ok_or_else(|| not_found(id))
}

fn application_mut<'a>(state: &'a mut Fake, id: &str) -> Result<&'a mut Application, Response> {
    state
        .applications
        .values_mut()
        .find(|a| a.object_id.eq_ignore_ascii_case(id))
        .ok_or_else(|| not_found(id))
}

/// A federated identity credential's body, checked as Graph checks it.
fn federated_credential(body: &Value) -> Result<Value, Response> {
    for field in ["name", "issuer", "subject"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return Err(bad_request(&format!("Property '{field}' is required.")));
        }
    }
    let audiences = body["audiences"].as_array().cloned().unwrap_or_default();
    if audiences.len() != 1 {
        return Err(bad_request("Exactly one audience is required."));
    }
    Ok(
        json!({"name": body["name"], "issuer": body["issuer"], "subject": body["subject"], "audiences": audiences, "description": body["description"]}),
    )
}
