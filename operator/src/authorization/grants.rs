//! What a SubscriptionAuthorization does in Azure, step by step, each step idempotent so that an
//! operator killed anywhere picks up where it stopped: the principal (looked up, or created under
//! a `uniqueName` derived from the resource), a role assignment per subscription (under a name
//! derived from scope, principal and role), and the AuditLog.Read.All app role (recorded as
//! Granting before it is created, so a restart knows it is this resource's).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::azure::{AzureApi, AzureError, Service};
use super::graph::{AUDIT_LOG_READ_ALL, GRAPH_APP_ID};
use super::plan::{self, Creation, Plan, PrincipalPlan, TOKEN_EXCHANGE_AUDIENCE};
use super::role;
use crate::crd::subscription_authorization::{
    CreatedApplication, Grant, GrantState, SubscriptionAuthorizationStatus, SubscriptionGrant,
};

/// Writes the status now, in the middle of a reconcile (see [`grant_audit_logs`]).
pub trait SaveStatus: Sync {
    fn save<'a>(
        &'a self,
        status: &'a SubscriptionAuthorizationStatus,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

const ARM_API: &str = "api-version=2022-04-01";
const SUBSCRIPTIONS_API: &str = "api-version=2022-12-01";
const ROLE_ASSIGNMENTS_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";

/// Why a step cannot finish now.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The condition reason.
    pub reason: &'static str,
    pub message: String,
    /// Retry after this long; None: wait for a change (a human must act).
    pub retry: Option<Duration>,
    /// What the admin credential lacks, in words an administrator acts on.
    pub missing: Option<String>,
}

impl Problem {
    pub fn from_azure(error: &AzureError, doing: &str, missing: Option<&str>) -> Problem {
        if error.transient() {
            return Problem {
                reason: "AzureUnavailable",
                message: format!("{doing}: {error}; retrying"),
                retry: Some(error.retry_after.unwrap_or(Duration::from_secs(30))),
                missing: None,
            };
        }
        if error.service == Service::Entra {
            return Problem {
                reason: "AdminCredentialRejected",
                message: format!(
                    "{error}; check spec.adminCredentialRef (client id, tenant, and the client secret in its Secret)"
                ),
                retry: None,
                missing: None,
            };
        }
        if error.status == Some(403) {
            let missing = missing.unwrap_or("the right to do this").to_owned();
            return Problem {
                reason: "MissingPermission",
                message: format!("{doing}: the admin credential lacks {missing} ({error})"),
                retry: None,
                missing: Some(missing),
            };
        }
        Problem {
            reason: "AzureRefused",
            message: format!("{doing}: {error}"),
            retry: None,
            missing: None,
        }
    }
}

/// Whom the role is granted to, once known.
async fn resolve_principal(
    api: &AzureApi<'_>,
    plan: &Plan,
    status: &mut SubscriptionAuthorizationStatus,
) -> Result<String, Problem> {
    match &plan.principal {
        PrincipalPlan::ObjectId(id) => Ok(id.clone()),
        PrincipalPlan::ClientId(client_id) => match find_service_principal(api, client_id).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(Problem {
                reason: "PrincipalNotFound",
                message: format!(
                    "no service principal with client id {client_id} exists in tenant {} (yet); a new one appears once Entra replicates it, and the operator keeps looking",
                    plan.tenant_id
                ),
                retry: Some(Duration::from_secs(15)),
                missing: None,
            }),
            Err(e) => Err(Problem::from_azure(
                &e,
                &format!("looking up the service principal of client id {client_id}"),
                Some(
                    "the Microsoft Graph application permission Application.Read.All (or give spec.principal.objectId instead)",
                ),
            )),
        },
        PrincipalPlan::Create(creation) => {
            let mut app = create_application(api, creation).await?;
            let client_id = app.client_id.clone().unwrap_or_default();
            app.client_secret = status.application.take().and_then(|a| a.client_secret);
            status.application = Some(app);
            let created = api
                .graph(
                    Method::PATCH,
                    &format!("servicePrincipals(appId='{client_id}')"),
                    Some(&json!({})),
                    true,
                )
                .await
                .map_err(|e| {
                    Problem::from_azure(
                        &e,
                        "creating the service principal",
                        Some(APPLICATION_WRITE),
                    )
                })?;
            if created.status.as_u16() == 201 {
                return object_id(&created.body);
            }
            match find_service_principal(api, &client_id).await {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(Problem {
                    reason: "PrincipalNotFound",
                    message: format!(
                        "the service principal of application {client_id} is not visible yet; retrying"
                    ),
                    retry: Some(Duration::from_secs(15)),
                    missing: None,
                }),
                Err(e) => Err(Problem::from_azure(
                    &e,
                    "reading the service principal",
                    Some(APPLICATION_WRITE),
                )),
            }
        }
    }
}

const APPLICATION_WRITE: &str =
    "the Microsoft Graph application permission Application.ReadWrite.All";

fn object_id(body: &Value) -> Result<String, Problem> {
    body["id"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| Problem {
            reason: "AzureRefused",
            message: "Microsoft Graph answered a service principal without an id".to_owned(),
            retry: Some(Duration::from_secs(60)),
            missing: None,
        })
}

/// The application for `creation`, made if missing (an upsert by uniqueName), with its federated
/// credential.
async fn create_application(
    api: &AzureApi<'_>,
    creation: &Creation,
) -> Result<CreatedApplication, Problem> {
    let path = format!("applications(uniqueName='{}')", creation.unique_name);
    let fail = |e: AzureError| {
        Problem::from_azure(&e, "creating the application", Some(APPLICATION_WRITE))
    };
    let upserted = api
        .graph(
            Method::PATCH,
            &path,
            Some(&json!({"displayName": creation.display_name})),
            true,
        )
        .await
        .map_err(fail)?;
    // 201 carries the new application; 204 (it existed) nothing, so it is read.
    let body = if upserted.status.as_u16() == 201 {
        upserted.body
    } else {
        find_application(api, creation)
            .await
            .map_err(fail)?
            .unwrap_or_default()
    };
    let (Some(client_id), Some(object_id)) = (body["appId"].as_str(), body["id"].as_str()) else {
        return Err(Problem {
            reason: "AzureRefused",
            message: "Microsoft Graph answered an application without appId or id".to_owned(),
            retry: Some(Duration::from_secs(60)),
            missing: None,
        });
    };
    let app = CreatedApplication {
        client_id: Some(client_id.to_owned()),
        object_id: Some(object_id.to_owned()),
        client_secret: None,
    };
    if let Some((name, issuer, subject)) = &creation.federated {
        let credentials = format!("applications/{}/federatedIdentityCredentials", object_id);
        let existing = api
            .graph(Method::GET, &credentials, None, false)
            .await
            .map_err(fail)?;
        let present = existing.body["value"].as_array().is_some_and(|list| {
            list.iter()
                .any(|c| c["issuer"] == issuer.as_str() && c["subject"] == subject.as_str())
        });
        if !present {
            let credential = json!({
                "name": name, "issuer": issuer, "subject": subject,
                "audiences": [TOKEN_EXCHANGE_AUDIENCE],
                "description": "azlog collector (SubscriptionAuthorization)",
            });
            match api
                .graph(Method::POST, &credentials, Some(&credential), false)
                .await
            {
                Ok(_) => {}
                // Another credential holds the name (the spec's issuer changed): Graph keeps the
                // old one; the message says so rather than guess which to replace.
                Err(e) if e.status == Some(409) => {
                    return Err(Problem {
                        reason: "FederatedCredentialConflict",
                        message: format!(
                            "application {} already has a federated credential named {name} with another issuer or subject; remove it in Entra ID and the operator adds the new one",
                            client_id
                        ),
                        retry: None,
                        missing: None,
                    });
                }
                Err(e) => return Err(fail(e)),
            }
        }
    }
    Ok(app)
}

/// The subscriptions to grant on: the spec's, or every one the admin credential lists.
async fn subscriptions(api: &AzureApi<'_>, plan: &Plan) -> Result<Vec<String>, Problem> {
    if let Some(ids) = &plan.subscriptions {
        return Ok(ids.clone());
    }
    let mut ids = Vec::new();
    let mut path = format!("/subscriptions?{SUBSCRIPTIONS_API}");
    loop {
        let page = api
            .arm(Method::GET, &path, None)
            .await
            .map_err(|e| Problem::from_azure(&e, "listing subscriptions", None))?;
        ids.extend(
            page.body["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["subscriptionId"].as_str().map(str::to_ascii_lowercase)),
        );
        match page.body["nextLink"].as_str() {
            // Only links to the same endpoint are followed: the admin's token goes nowhere else.
            Some(next) => match next.find("/subscriptions?") {
                Some(at) => path = next[at..].to_owned(),
                None => break,
            },
            None => break,
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn assignment_path(subscription: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments/{name}?{ARM_API}"
    )
}

fn role_name(role_id: &str) -> String {
    role::BUILT_IN
        .iter()
        .find(|r| r.id == role_id)
        .map_or_else(|| format!("role {role_id}"), |r| r.name.to_owned())
}

/// Grants the role on one subscription: preflight of the admin's permissions, then the PUT.
async fn grant_subscription(
    api: &AzureApi<'_>,
    plan: &Plan,
    principal: &str,
    subscription: &str,
    previous: Option<&Grant>,
) -> Result<Grant, Problem> {
    let name = plan::assignment_name(subscription, principal, &plan.role);
    let path = assignment_path(subscription, &name);
    // Granted before: one GET says whether it still stands (someone may have removed it).
    if previous.is_some_and(|g| g.state == GrantState::Granted)
        && let Ok(found) = api.arm(Method::GET, &path, None).await
    {
        return Ok(granted(found.body["id"].as_str()));
    }
    let missing = format!(
        "{ROLE_ASSIGNMENTS_WRITE} on /subscriptions/{subscription} (assign the admin credential User Access Administrator or Owner there)"
    );
    let permissions = api
        .arm(
            Method::GET,
            &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/permissions?{ARM_API}"),
            None,
        )
        .await;
    match permissions {
        Ok(answer) => {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            };
            let allowed = answer.body["value"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    role::permits(
                        &strings(&p["actions"]),
                        &strings(&p["notActions"]),
                        ROLE_ASSIGNMENTS_WRITE,
                    )
                });
            if !allowed {
                return Err(Problem {
                    reason: "MissingPermission",
                    message: format!("the admin credential lacks {missing}"),
                    retry: None,
                    missing: Some(missing),
                });
            }
        }
        Err(e) => {
            return Err(Problem::from_azure(
                &e,
                "reading the admin credential's permissions",
                Some(&missing),
            ));
        }
    }
    let body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}", plan.role),
        "principalId": principal,
        // Named, so ARM does not need to look the principal up before it has replicated.
        "principalType": "ServicePrincipal",
    }});
    match api.arm(Method::PUT, &path, Some(&body)).await {
        Ok(answer) => Ok(granted(answer.body["id"].as_str())),
        Err(e) if e.is(409, "RoleAssignmentExists") => Ok(Grant {
            state: GrantState::PreExisting,
            id: None,
            message: Some(format!(
                "the principal already holds {} here through an assignment this resource did not make; it is left alone",
                role_name(&plan.role)
            )),
        }),
        Err(e) if e.is(400, "PrincipalNotFound") => Err(Problem {
            reason: "PrincipalNotReplicated",
            message: format!(
                "Azure Resource Manager does not see principal {principal} yet (Entra replication takes seconds to minutes); retrying"
            ),
            retry: Some(Duration::from_secs(15)),
            missing: None,
        }),
        Err(e) if e.is(400, "RoleDefinitionDoesNotExist") => Err(Problem {
            reason: "RoleNotFound",
            message: format!(
                "spec.role: role definition {} does not exist in subscription {subscription}; check the id",
                plan.role
            ),
            retry: None,
            missing: None,
        }),
        Err(e) => Err(Problem::from_azure(
            &e,
            "assigning the role",
            Some(&missing),
        )),
    }
}

fn granted(id: Option<&str>) -> Grant {
    Grant {
        state: GrantState::Granted,
        id: id.map(str::to_owned),
        message: None,
    }
}

/// The grant a problem leaves: Pending while Azure may still come round, Failed when a human
/// must act.
fn refused(problem: &Problem) -> Grant {
    Grant {
        state: if problem.retry.is_some() {
            GrantState::Pending
        } else {
            GrantState::Failed
        },
        id: None,
        message: Some(problem.message.clone()),
    }
}

/// Removes this resource's assignment on `subscription` (its derived name makes it exactly ours).
async fn revoke_subscription(
    api: &AzureApi<'_>,
    plan_role: &str,
    principal: &str,
    subscription: &str,
) -> Result<(), AzureError> {
    let name = plan::assignment_name(subscription, principal, plan_role);
    match api
        .arm(Method::DELETE, &assignment_path(subscription, &name), None)
        .await
    {
        Ok(_) => Ok(()),
        // The subscription is gone, or nothing is left to remove.
        Err(e) if e.status == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Microsoft Graph service principal's object id in the tenant.
async fn graph_service_principal(api: &AzureApi<'_>) -> Result<String, AzureError> {
    find_service_principal(api, GRAPH_APP_ID)
        .await?
        .ok_or_else(|| AzureError {
            service: Service::Graph,
            status: Some(404),
            code: "Request_ResourceNotFound".into(),
            message: "the tenant has no Microsoft Graph service principal".into(),
            retry_after: None,
        })
}

/// The principal's AuditLog.Read.All assignment, if it holds one.
async fn audit_assignment(
    api: &AzureApi<'_>,
    principal: &str,
    graph: &str,
) -> Result<Option<String>, AzureError> {
    let answer = api
        .graph(
            Method::GET,
            &format!("servicePrincipals/{principal}/appRoleAssignments"),
            None,
            false,
        )
        .await?;
    Ok(answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|a| {
            let matches = a["appRoleId"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(AUDIT_LOG_READ_ALL))
                && a["resourceId"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(graph));
            matches.then(|| a["id"].as_str().unwrap_or_default().to_owned())
        }))
}

const GRANT_APP_ROLE: &str = "the Microsoft Graph application permission AppRoleAssignment.ReadWrite.All (with admin consent) to grant AuditLog.Read.All";

/// Grants AuditLog.Read.All. `save` records Granting before the grant is made, so that an
/// assignment found after a restart is known to be this resource's.
async fn grant_audit_logs(
    api: &AzureApi<'_>,
    principal: &str,
    status: &mut SubscriptionAuthorizationStatus,
    save: &dyn SaveStatus,
) -> Result<Grant, Problem> {
    let doing = "granting AuditLog.Read.All";
    let graph = graph_service_principal(api).await.map_err(|e| {
        Problem::from_azure(
            &e,
            doing,
            Some("the Microsoft Graph application permission Application.Read.All"),
        )
    })?;
    let previous = status.audit_logs.as_ref().map(|g| g.state);
    let ours = matches!(previous, Some(GrantState::Granting | GrantState::Granted));
    let existing = audit_assignment(api, principal, &graph)
        .await
        .map_err(|e| {
            Problem::from_azure(
                &e,
                doing,
                Some("the Microsoft Graph application permission Application.Read.All"),
            )
        })?;
    if let Some(id) = existing {
        return Ok(if ours {
            granted(Some(&id))
        } else {
            Grant {
                state: GrantState::PreExisting,
                id: Some(id),
                message: Some(
                    "the principal already held AuditLog.Read.All; it is left alone".into(),
                ),
            }
        });
    }
    status.audit_logs = Some(Grant {
        state: GrantState::Granting,
        id: None,
        message: None,
    });
    save_now(save, status).await?;
    let body =
        json!({"principalId": principal, "resourceId": graph, "appRoleId": AUDIT_LOG_READ_ALL});
    match api
        .graph(
            Method::POST,
            &format!("servicePrincipals/{graph}/appRoleAssignedTo"),
            Some(&body),
            false,
        )
        .await
    {
        Ok(answer) => Ok(granted(answer.body["id"].as_str())),
        Err(e) => Err(Problem::from_azure(&e, doing, Some(GRANT_APP_ROLE))),
    }
}

async fn revoke_audit_logs(api: &AzureApi<'_>, principal: &str) -> Result<(), AzureError> {
    let graph = graph_service_principal(api).await?;
    if let Some(id) = audit_assignment(api, principal, &graph).await? {
        api.graph(
            Method::DELETE,
            &format!("servicePrincipals/{graph}/appRoleAssignedTo/{id}"),
            None,
            false,
        )
        .await?;
    }
    Ok(())
}

/// Writes the status now; a failure is the problem that stops the reconcile.
pub async fn save_now(
    save: &dyn SaveStatus,
    status: &SubscriptionAuthorizationStatus,
) -> Result<(), Problem> {
    save.save(status).await.map_err(|message| Problem {
        reason: "StatusNotSaved",
        message,
        retry: Some(Duration::from_secs(15)),
        missing: None,
    })
}

/// Brings Azure to the plan and `status` up to date with it. Answers the first problem that keeps
/// it from Ready, if any.
pub async fn apply(
    api: &AzureApi<'_>,
    plan: &Plan,
    status: &mut SubscriptionAuthorizationStatus,
    save: &dyn SaveStatus,
) -> Option<Problem> {
    status.missing_permissions.clear();
    // Recorded before anything is made in Azure, so that a deletion after a crash knows to look.
    if matches!(plan.principal, PrincipalPlan::Create(_)) && status.application.is_none() {
        status.application = Some(CreatedApplication::default());
        if let Err(problem) = save_now(save, status).await {
            return Some(problem);
        }
    }
    let principal = match resolve_principal(api, plan, status).await {
        Ok(p) => p,
        Err(problem) => {
            status.missing_permissions.extend(problem.missing.clone());
            return Some(problem);
        }
    };
    if status.principal_id.as_deref() != Some(principal.as_str()) {
        status.principal_id = Some(principal.clone());
        if let Err(problem) = save_now(save, status).await {
            return Some(problem);
        }
    }
    let desired = match subscriptions(api, plan).await {
        Ok(ids) => ids,
        Err(problem) => return Some(problem),
    };
    let previous = std::mem::take(&mut status.subscriptions);
    let mut problem = None;
    for subscription in &desired {
        let before = previous
            .iter()
            .find(|g| g.subscription_id == *subscription)
            .map(|g| &g.grant);
        let grant = match grant_subscription(api, plan, &principal, subscription, before).await {
            Ok(grant) => grant,
            Err(refusal) => {
                status.missing_permissions.extend(refusal.missing.clone());
                let grant = refused(&refusal);
                problem.get_or_insert(Problem {
                    message: format!("subscription {subscription}: {}", refusal.message),
                    ..refusal
                });
                grant
            }
        };
        status.subscriptions.push(SubscriptionGrant {
            subscription_id: subscription.clone(),
            grant,
        });
    }
    // Subscriptions no longer declared lose the assignment this resource made there.
    for old in previous
        .into_iter()
        .filter(|g| !desired.contains(&g.subscription_id))
    {
        if !matches!(
            old.grant.state,
            GrantState::Granted | GrantState::Granting | GrantState::Removing
        ) {
            continue;
        }
        if let Err(e) = revoke_subscription(api, &plan.role, &principal, &old.subscription_id).await
        {
            let removing = Grant {
                state: GrantState::Removing,
                id: old.grant.id.clone(),
                message: Some(format!("removing the assignment failed: {e}; retrying")),
            };
            problem.get_or_insert(Problem {
                reason: "RemovalPending",
                message: format!(
                    "subscription {}: {}",
                    old.subscription_id,
                    removing.message.clone().unwrap_or_default()
                ),
                retry: Some(e.retry_after.unwrap_or(Duration::from_secs(30))),
                missing: None,
            });
            status.subscriptions.push(SubscriptionGrant {
                subscription_id: old.subscription_id,
                grant: removing,
            });
        }
    }
    if plan.audit_logs {
        match grant_audit_logs(api, &principal, status, save).await {
            Ok(grant) => status.audit_logs = Some(grant),
            Err(p) => {
                status.missing_permissions.extend(p.missing.clone());
                let state = if p.retry.is_some() {
                    GrantState::Pending
                } else {
                    GrantState::Failed
                };
                // After a failure that may have reached Azure (no answer, a 5xx) Granting stays
                // recorded until the grant is known to exist or not; a refusal made nothing.
                let granting = status
                    .audit_logs
                    .as_ref()
                    .is_some_and(|g| g.state == GrantState::Granting);
                let state = if granting && p.retry.is_some() {
                    GrantState::Granting
                } else {
                    state
                };
                status.audit_logs = Some(Grant {
                    state,
                    id: None,
                    message: Some(p.message.clone()),
                });
                problem.get_or_insert(p);
            }
        }
    } else if let Some(previous) = status.audit_logs.take()
        // A pre-existing grant is simply forgotten; only this resource's is removed.
        && matches!(
            previous.state,
            GrantState::Granted | GrantState::Granting | GrantState::Removing
        )
        && let Err(e) = revoke_audit_logs(api, &principal).await
    {
        let p = Problem::from_azure(&e, "removing AuditLog.Read.All", Some(GRANT_APP_ROLE));
        status.audit_logs = Some(Grant {
            state: GrantState::Removing,
            id: previous.id,
            message: Some(p.message.clone()),
        });
        problem.get_or_insert(p);
    }
    status.missing_permissions.sort();
    status.missing_permissions.dedup();
    problem
}

/// A Graph object, or None when Graph says it does not exist.
async fn graph_find(api: &AzureApi<'_>, path: &str) -> Result<Option<Value>, AzureError> {
    match api.graph(Method::GET, path, None, false).await {
        Ok(answer) => Ok(Some(answer.body)),
        Err(e) if e.status == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The service principal of client id `app_id`, if it exists.
async fn find_service_principal(
    api: &AzureApi<'_>,
    app_id: &str,
) -> Result<Option<String>, AzureError> {
    Ok(
        graph_find(api, &format!("servicePrincipals(appId='{app_id}')"))
            .await?
            .and_then(|sp| sp["id"].as_str().map(str::to_ascii_lowercase)),
    )
}

/// The application created for `creation`, if it exists.
async fn find_application(
    api: &AzureApi<'_>,
    creation: &Creation,
) -> Result<Option<Value>, AzureError> {
    graph_find(
        api,
        &format!("applications(uniqueName='{}')", creation.unique_name),
    )
    .await
}

/// Removes everything this resource created: its role assignments (by their derived names, on
/// every subscription it recorded or declares), its AuditLog.Read.All grant, and the application
/// it created. What it did not create is never touched.
pub async fn remove(
    api: &AzureApi<'_>,
    plan: &Plan,
    status: &SubscriptionAuthorizationStatus,
) -> Result<(), Problem> {
    let fail = |e: AzureError| Problem::from_azure(&e, "removing what this resource granted", None);
    let principal = match (&status.principal_id, &plan.principal) {
        (Some(id), _) => Some(id.clone()),
        (None, PrincipalPlan::ObjectId(id)) => Some(id.clone()),
        // Never recorded: look it up without creating anything, in case a crash came between
        // granting and recording.
        (None, PrincipalPlan::ClientId(client_id)) => {
            find_service_principal(api, client_id).await.map_err(fail)?
        }
        (None, PrincipalPlan::Create(creation)) => {
            match find_application(api, creation).await.map_err(fail)? {
                Some(app) => {
                    let app_id = app["appId"].as_str().unwrap_or_default();
                    find_service_principal(api, app_id).await.map_err(fail)?
                }
                None => None,
            }
        }
    };
    if let Some(principal) = &principal {
        let mut subscriptions: Vec<String> = status
            .subscriptions
            .iter()
            .map(|g| g.subscription_id.clone())
            .collect();
        // Declared, or (with none declared) every one listed: a crash may have come between
        // granting and recording.
        subscriptions.extend(self::subscriptions(api, plan).await?);
        subscriptions.sort();
        subscriptions.dedup();
        for subscription in &subscriptions {
            revoke_subscription(api, &plan.role, principal, subscription)
                .await
                .map_err(fail)?;
        }
        let ours = status.audit_logs.as_ref().is_some_and(|g| {
            matches!(
                g.state,
                GrantState::Granted | GrantState::Granting | GrantState::Removing
            )
        });
        if ours {
            revoke_audit_logs(api, principal).await.map_err(fail)?;
        }
    }
    if let PrincipalPlan::Create(creation) = &plan.principal
        && let Some(app) = find_application(api, creation).await.map_err(fail)?
    {
        let id = app["id"].as_str().unwrap_or_default();
        // Deleting the application deletes its service principal and credentials too.
        api.graph(Method::DELETE, &format!("applications/{id}"), None, false)
            .await
            .map_err(fail)?;
    }
    Ok(())
}
