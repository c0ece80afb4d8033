//! The SubscriptionAuthorization controller: check the spec, read the admin credential, bring
//! Azure to what the spec declares (see [`grants`]), report status, conditions and Events. A
//! finalizer removes what the resource created when it is deleted (deletionPolicy Delete), and
//! keeps the resource until that is done, however long Azure is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azlog_config::azure::{AzureConfig, EndpointOverrides, Endpoints};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as Finalizing};
use kube::runtime::reflector;
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::azure::{AdminCredential, AzureApi, Proof};
use super::client_secret;
use super::grants::{self, Problem};
use super::plan::{self, Plan};
use crate::conditions;
use crate::controller::FIELD_MANAGER;
use crate::crd::subscription_authorization::{
    DeletionPolicy, SubscriptionAuthorization, SubscriptionAuthorizationStatus,
};
use crate::metrics::Metrics;

/// Keeps a deleted SubscriptionAuthorization until what it created in Azure is removed.
pub const FINALIZER: &str = "azlog.io/azure-grants";
/// The label an admin credential's Secret carries to be usable here: whoever may create a
/// SubscriptionAuthorization must not be able to borrow any Secret of the namespace.
pub const ADMIN_SECRET_LABEL: &str = "azlog.io/admin-credential";
/// How often a granted resource is checked against Azure (drift, new subscriptions).
const RESYNC: Duration = Duration::from_secs(3600);
/// How soon a resource that needs a human (a missing permission, a refused credential) is looked
/// at again without a change: rare enough that it never storms Azure.
const HUMAN_WAIT: Duration = Duration::from_secs(600);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to update the status: {0}")]
    Status(#[source] kube::Error),
    #[error("failed to read Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Blocked(String),
}

/// Where Azure is, for every SubscriptionAuthorization (set by the cluster admin, never by a
/// resource: the admin credential goes only there).
#[derive(Debug, Clone)]
pub struct AzureSettings {
    pub endpoints: EndpointOverrides,
    /// See [`super::azure::http_client`].
    pub http: reqwest::Client,
    /// The operator's own workload identity, if it has one.
    pub operator_identity: Option<OperatorIdentity>,
    /// Namespaces whose SubscriptionAuthorizations may act as the operator's identity (`*`:
    /// every one).
    pub operator_identity_namespaces: Vec<String>,
}

/// A workload identity as the AKS webhook sets it up: a client id and a projected token file.
#[derive(Debug, Clone)]
pub struct OperatorIdentity {
    pub client_id: String,
    pub token_file: std::path::PathBuf,
}

impl OperatorIdentity {
    /// From `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`, when both are set.
    pub fn from_env() -> Option<OperatorIdentity> {
        let client_id = std::env::var("AZURE_CLIENT_ID")
            .ok()
            .filter(|v| !v.is_empty())?;
        let token_file =
            std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").filter(|v| !v.is_empty())?;
        Some(OperatorIdentity {
            client_id,
            token_file: token_file.into(),
        })
    }
}

pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    settings: AzureSettings,
    /// Consecutive retries by resource uid, for backoff.
    attempts: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Runs the controller until `shutdown` resolves, over every namespace or the ones given.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    settings: AzureSettings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client: client.clone(),
        metrics,
        settings,
        attempts: Mutex::new(HashMap::new()),
    });
    let shutdown = shutdown.boxed().shared();
    let apis: Vec<Api<SubscriptionAuthorization>> = if namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    futures::future::join_all(apis.into_iter().map(|api| {
        // The operator's own status writes change the object too; reconciling again for them
        // would double every Azure call. What the user changes (spec, annotations, a deletion)
        // and the finalizer's coming and going still count.
        let (reader, writer) = reflector::store();
        let changes = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(user_change, PredicateConfig::default());
        Controller::for_stream(changes, reader)
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile did not complete");
                }
            })
    }))
    .await;
}

/// A hash of what a user (or the finalizer) changes: generation, annotations, finalizers and
/// deletion; the status is left out.
fn user_change(resource: &SubscriptionAuthorization) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &resource.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

fn error_policy(
    resource: Arc<SubscriptionAuthorization>,
    error: &finalizer::Error<Error>,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&["subscription_authorization"])
        .inc();
    tracing::warn!(subscriptionauthorization = %resource.name_any(), namespace = resource.namespace().unwrap_or_default(), error = %error, "reconcile failed; retrying in 30s");
    Action::requeue(Duration::from_secs(30))
}

async fn reconcile(
    resource: Arc<SubscriptionAuthorization>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<Error>> {
    let api: Api<SubscriptionAuthorization> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let result = finalizer::finalizer(&api, FINALIZER, resource, |event| async {
        match event {
            Finalizing::Apply(resource) => apply(&resource, &ctx).await,
            Finalizing::Cleanup(resource) => cleanup(&resource, &ctx).await,
        }
    })
    .await;
    ctx.metrics
        .reconciles
        .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
        .inc();
    result
}

/// The admin credential: from its Secret, or the operator's own identity where the cluster admin
/// allows it; or why it cannot be used (reason, message).
async fn admin_credential(
    resource: &SubscriptionAuthorization,
    plan: &Plan,
    ctx: &Context,
) -> Result<Result<AdminCredential, (&'static str, String)>, Error> {
    let namespace = resource.namespace().unwrap_or_default();
    let Some(admin) = &plan.admin else {
        let allowed = ctx
            .settings
            .operator_identity_namespaces
            .iter()
            .any(|n| n == "*" || *n == namespace);
        if !allowed {
            return Ok(Err((
                "PolicyRefused",
                format!(
                    "spec.adminCredentialRef is required in namespace {namespace}: the operator's own Azure identity serves only the namespaces the cluster admin lists (policy.operatorIdentityNamespaces)"
                ),
            )));
        }
        return Ok(match &ctx.settings.operator_identity {
            Some(identity) => Ok(AdminCredential {
                tenant_id: plan.tenant_id.clone(),
                client_id: identity.client_id.clone(),
                proof: Proof::TokenFile(identity.token_file.clone()),
            }),
            None => Err((
                "OperatorIdentityMissing",
                "the operator runs without a workload identity (AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE are not set); give it one, or set spec.adminCredentialRef".to_owned(),
            )),
        });
    };
    let reference = &admin.client_secret;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let found = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Secret {
            name: reference.name.clone(),
            source,
        })?;
    let Some(secret) = found else {
        return Ok(Err((
            "AdminSecretNotFound",
            format!(
                "Secret {} (spec.adminCredentialRef.clientSecret) does not exist in namespace {namespace}; create it with key {} and the label {ADMIN_SECRET_LABEL}=true",
                reference.name, reference.key
            ),
        )));
    };
    let labelled = secret
        .labels()
        .get(ADMIN_SECRET_LABEL)
        .is_some_and(|v| v == "true");
    if !labelled {
        return Ok(Err((
            "AdminSecretNotAllowed",
            format!(
                "Secret {} has not opted in to being used as an admin credential; if it is meant for this, label it: kubectl label secret {} -n {namespace} {ADMIN_SECRET_LABEL}=true",
                reference.name, reference.name
            ),
        )));
    }
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|v| String::from_utf8_lossy(&v.0).trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(client_secret) = value else {
        return Ok(Err((
            "AdminSecretKeyMissing",
            format!(
                "Secret {} has no key {} (spec.adminCredentialRef.clientSecret.key)",
                reference.name, reference.key
            ),
        )));
    };
    Ok(Ok(AdminCredential {
        tenant_id: plan.tenant_id.clone(),
        client_id: admin.client_id.trim().to_owned(),
        proof: Proof::ClientSecret(client_secret),
    }))
}

fn endpoints(plan: &Plan, ctx: &Context) -> Endpoints {
    Endpoints::resolve(&AzureConfig {
        cloud: plan.cloud,
        endpoints: ctx.settings.endpoints.clone(),
        ..AzureConfig::default()
    })
}

async fn apply(resource: &SubscriptionAuthorization, ctx: &Context) -> Result<Action, Error> {
    let generation = resource.metadata.generation;
    let mut status = resource.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let plan = match plan::plan(resource) {
        Ok(plan) => plan,
        Err(problems) => {
            let message = format!("the spec is invalid: {}", problems.join("; "));
            settle(
                resource,
                ctx,
                status,
                Some(&stalled("InvalidSpec", message)),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let credential = match admin_credential(resource, &plan, ctx).await? {
        Ok(credential) => credential,
        Err((reason, message)) => {
            let problem = Problem {
                reason,
                message,
                retry: Some(Duration::from_secs(30)),
                missing: None,
            };
            settle(resource, ctx, status, Some(&problem)).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let api = AzureApi::new(
        &ctx.settings.http,
        endpoints(&plan, ctx),
        credential,
        &ctx.metrics,
    );
    let saver = Saver { resource, ctx };
    let problem = grants::apply(&api, &plan, &mut status, &saver).await;
    let secret_problem =
        client_secret::ensure(&api, &ctx.client, resource, &plan, &mut status, &saver).await;
    let problem = problem.or(secret_problem);
    settle(resource, ctx, status, problem.as_ref()).await?;
    Ok(next(resource, ctx, problem.as_ref()))
}

struct Saver<'a> {
    resource: &'a SubscriptionAuthorization,
    ctx: &'a Context,
}

impl grants::SaveStatus for Saver<'_> {
    fn save<'a>(
        &'a self,
        status: &'a SubscriptionAuthorizationStatus,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            write_status(self.resource, self.ctx, status)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn stalled(reason: &'static str, message: String) -> Problem {
    Problem {
        reason,
        message,
        retry: None,
        missing: None,
    }
}

/// When to look again: backoff while Azure is expected to change by itself, a long wait when a
/// human must act, the resync otherwise.
fn next(resource: &SubscriptionAuthorization, ctx: &Context, problem: Option<&Problem>) -> Action {
    let uid = resource.uid().unwrap_or_default();
    let mut attempts = ctx.attempts.lock().unwrap_or_else(|p| p.into_inner());
    match problem {
        None => {
            attempts.remove(&uid);
            Action::requeue(RESYNC)
        }
        Some(Problem { retry: None, .. }) => {
            attempts.remove(&uid);
            Action::requeue(HUMAN_WAIT)
        }
        Some(Problem {
            retry: Some(base), ..
        }) => {
            let n = attempts.entry(uid).or_insert(0);
            let wait = base
                .saturating_mul(1 << (*n).min(6))
                .min(MAX_BACKOFF.max(*base));
            *n += 1;
            Action::requeue(wait)
        }
    }
}

/// Sets the conditions from `problem` (None: all granted), writes the status if it changed and
/// tells an Event when Ready changes.
async fn settle(
    resource: &SubscriptionAuthorization,
    ctx: &Context,
    mut status: SubscriptionAuthorizationStatus,
    problem: Option<&Problem>,
) -> Result<(), Error> {
    let generation = resource.metadata.generation;
    let conditions = &mut status.conditions;
    let (event, reason, message) = match problem {
        None => {
            let message = format!(
                "granted to principal {} on {} subscription(s){}",
                status.principal_id.as_deref().unwrap_or("?"),
                status.subscriptions.len(),
                if status.audit_logs.is_some() {
                    ", with AuditLog.Read.All"
                } else {
                    ""
                }
            );
            conditions::set(conditions, "Ready", true, "Granted", &message, generation);
            conditions::set(
                conditions,
                "Reconciling",
                false,
                "Granted",
                "Azure holds what the spec declares",
                generation,
            );
            conditions::set(
                conditions,
                "Stalled",
                false,
                "Granted",
                "nothing blocks the grants",
                generation,
            );
            (EventType::Normal, "Granted", message)
        }
        Some(p) => {
            conditions::set(conditions, "Ready", false, p.reason, &p.message, generation);
            let waiting = p.retry.is_some();
            conditions::set(
                conditions,
                "Reconciling",
                waiting,
                p.reason,
                if waiting {
                    &p.message
                } else {
                    "waiting for a change"
                },
                generation,
            );
            conditions::set(
                conditions,
                "Stalled",
                !waiting,
                p.reason,
                if waiting {
                    "retrying by itself"
                } else {
                    &p.message
                },
                generation,
            );
            (EventType::Warning, p.reason, p.message.clone())
        }
    };
    let before = resource.status.as_ref();
    let ready_changed = before
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|c| c.reason != reason || c.message != message);
    if before != Some(&status) {
        write_status(resource, ctx, &status).await?;
    }
    if ready_changed {
        conditions::publish(
            &ctx.recorder,
            &resource.object_ref(&()),
            event,
            reason,
            &message,
        )
        .await;
    }
    Ok(())
}

/// Writes the whole status; fields that are now empty are removed.
async fn write_status(
    resource: &SubscriptionAuthorization,
    ctx: &Context,
    status: &SubscriptionAuthorizationStatus,
) -> Result<(), Error> {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Value::Object(fields) = &mut value {
        for key in [
            "principalId",
            "application",
            "subscriptions",
            "auditLogs",
            "missingPermissions",
            "conditions",
        ] {
            fields.entry(key).or_insert(Value::Null);
        }
    }
    let api: Api<SubscriptionAuthorization> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    api.patch_status(
        &resource.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": value })),
    )
    .await
    .map_err(Error::Status)?;
    ctx.metrics
        .writes
        .with_label_values(&["SubscriptionAuthorizationStatus"])
        .inc();
    Ok(())
}

/// Deletion: Retain lets go at once; Delete removes what the resource created first, and while
/// it cannot, the resource stays with a condition saying why.
async fn cleanup(resource: &SubscriptionAuthorization, ctx: &Context) -> Result<Action, Error> {
    let retain = resource.spec.deletion_policy == Some(DeletionPolicy::Retain);
    let status = resource.status.clone().unwrap_or_default();
    let object = resource.object_ref(&());
    if retain {
        conditions::publish(
            &ctx.recorder,
            &object,
            EventType::Normal,
            "Retained",
            "deletionPolicy Retain: the grants stay in Azure",
        )
        .await;
        return Ok(Action::await_change());
    }
    // The principal (and an application about to be created) is recorded before anything is
    // made in Azure: without either, nothing was, and there is nothing to remove.
    let nothing_made = status.principal_id.is_none() && status.application.is_none();
    let plan = match plan::plan(resource) {
        Ok(plan) => plan,
        Err(_) if nothing_made => return Ok(Action::await_change()),
        Err(problems) => {
            return blocked(
                resource,
                ctx,
                format!("the spec is invalid ({})", problems.join("; ")),
            )
            .await;
        }
    };
    let credential = match admin_credential(resource, &plan, ctx).await? {
        Ok(credential) => credential,
        Err(_) if nothing_made => return Ok(Action::await_change()),
        Err((_, message)) => return blocked(resource, ctx, message).await,
    };
    let api = AzureApi::new(
        &ctx.settings.http,
        endpoints(&plan, ctx),
        credential,
        &ctx.metrics,
    );
    match grants::remove(&api, &plan, &status).await {
        Ok(()) => {
            // Gone: its backoff is not needed any more.
            ctx.attempts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&resource.uid().unwrap_or_default());
            conditions::publish(&ctx.recorder, &object, EventType::Normal, "Removed", "removed the role assignments, Graph permission and application this resource created").await;
            Ok(Action::await_change())
        }
        Err(problem) => {
            blocked(
                resource,
                ctx,
                format!("removing the grants failed: {}", problem.message),
            )
            .await
        }
    }
}

/// Reports that deletion waits, and why; the error makes the controller retry.
async fn blocked(
    resource: &SubscriptionAuthorization,
    ctx: &Context,
    message: String,
) -> Result<Action, Error> {
    let message = format!(
        "{message}. The resource stays until this is removed; to delete it without removing anything in Azure, set spec.deletionPolicy: Retain"
    );
    let status = resource.status.clone().unwrap_or_default();
    let problem = Problem {
        reason: "DeletionBlocked",
        message: message.clone(),
        retry: Some(Duration::from_secs(30)),
        missing: None,
    };
    settle(resource, ctx, status, Some(&problem)).await?;
    Err(Error::Blocked(message))
}
