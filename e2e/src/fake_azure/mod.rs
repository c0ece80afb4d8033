//! A fake Azure, faithful to the public API shapes the collector and operator use: the Entra ID
//! token endpoint, ARM (subscriptions, Activity Log, Defender for Cloud alerts) and Microsoft Graph
//! (directoryAudits, signIns). It serves HTTPS on loopback with its own CA, pages with `nextLink` /
//! `@odata.nextLink`, checks bearer tokens and roles, answers with each service's error bodies, and
//! lets a test script faults: throttling with Retry-After, 5xx, slow answers, malformed pages,
//! duplicates across page boundaries, revoked tokens and lost roles.
//!
//! ```no_run
//! # async fn example() -> Result<(), String> {
//! use azlog_e2e::fake_azure::{Api, FakeAzure, Fault};
//! let azure = FakeAzure::start().await?;
//! azure.add_client_secret("tenant-1", "client-1", "s3cret");
//! azure.add_subscription("sub-1", "tenant-1");
//! azure.grant_reader("client-1", "sub-1");
//! azure.inject(Api::ActivityLog, Fault::Status { status: 429, retry_after: Some(2) });
//! # Ok(()) }
//! ```

mod arm;
mod authorization;
mod directory;
mod entra;
mod filter;
mod graph;
mod resource_graph;
mod state;
pub(crate) mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::Value;
use tokio::net::TcpListener;

pub use state::{Api, AppRoleAssignment, Audience, Fault, RoleAssignment, Served};
use state::{Identity, State, Subscription};

struct Inner {
    state: Mutex<State>,
    base_url: String,
}

type Shared = Arc<Inner>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic inside a handler poisons the lock; the state itself is still consistent enough to serve.
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn base_url(shared: &Shared) -> String {
    shared.base_url.clone()
}

/// Why a bearer token was refused; each API family words it its own way.
enum AuthFailure {
    Missing,
    Unknown,
    Expired,
    WrongAudience,
}

fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    audience: Audience,
) -> Result<String, AuthFailure> {
    let header = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .ok_or(AuthFailure::Missing)?;
    let token = header.strip_prefix("Bearer ").ok_or(AuthFailure::Missing)?;
    let state = lock(shared);
    let token = state.tokens.get(token).ok_or(AuthFailure::Unknown)?;
    if token.expires <= Instant::now() {
        return Err(AuthFailure::Expired);
    }
    if token.audience != audience {
        return Err(AuthFailure::WrongAudience);
    }
    Ok(token.client_id.clone())
}

/// The scripted fault for this request, if any, as the response to send instead.
async fn fault(shared: &Shared, api: Api) -> Option<Response> {
    let (fault, latency) = {
        let mut state = lock(shared);
        (state.take_fault(api), state.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = fault?;
    match fault {
        Fault::Delay(wait) => {
            tokio::time::sleep(wait).await;
            None
        }
        Fault::Body(body) => {
            Some(([("content-type", "application/json; charset=utf-8")], body).into_response())
        }
        Fault::Status {
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (code, message) = match status.as_u16() {
                429 => (
                    "TooManyRequests",
                    "The request was throttled; retry after the interval in the Retry-After header.",
                ),
                500 => (
                    "InternalServerError",
                    "The server encountered an internal error.",
                ),
                502 => (
                    "BadGateway",
                    "The gateway did not receive a response from the backend service.",
                ),
                503 => (
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                ),
                504 => (
                    "GatewayTimeout",
                    "The gateway did not receive a response within the time limit.",
                ),
                401 => ("InvalidAuthenticationToken", "The access token is invalid."),
                403 => (
                    "AuthorizationFailed",
                    "The client does not have authorization to perform this action.",
                ),
                _ => ("Error", "Injected failure."),
            };
            let mut response = match api {
                Api::DirectoryAudits | Api::SignIns => graph::graph_error(status, code, message),
                _ => arm::arm_error(status, code, message),
            };
            if let Some(seconds) = retry_after
                && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
            {
                response.headers_mut().insert("retry-after", value);
            }
            Some(response)
        }
    }
}

fn record(shared: &Shared, api: Api, query: &str, response: Response) -> Response {
    record_for(shared, api, None, query, response)
}

/// Records an answer of a per-subscription listing.
fn record_for(
    shared: &Shared,
    api: Api,
    subscription: Option<&str>,
    query: &str,
    response: Response,
) -> Response {
    lock(shared).served.push(Served {
        api,
        status: response.status().as_u16(),
        query: query.to_owned(),
        subscription: subscription.map(str::to_owned),
        at: Instant::now(),
    });
    response
}

fn query_text(query: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join("&")
}

/// A running fake Azure. Dropping it does not stop the server; it lives as long as the runtime.
pub struct FakeAzure {
    shared: Shared,
    address: SocketAddr,
    ca_pem: String,
}

impl std::fmt::Debug for FakeAzure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAzure")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl FakeAzure {
    /// Starts on a free loopback port.
    pub async fn start() -> Result<FakeAzure, String> {
        FakeAzure::start_on("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?).await
    }

    pub async fn start_on(listen: SocketAddr) -> Result<FakeAzure, String> {
        let certificates = tls::certificates()?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Inner {
            state: Mutex::new(State::default()),
            base_url: format!("https://{address}"),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
            .route("/subscriptions", get(arm::subscriptions))
            .route("/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values", get(arm::activity_log))
            .route("/subscriptions/{subscription}/providers/Microsoft.Security/alerts", get(arm::security_alerts))
            .route("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Security/locations/{location}/alerts/{name}", get(arm::security_alert))
            .route("/providers/Microsoft.ResourceGraph/resources", post(resource_graph::resources))
            .route("/v1.0/auditLogs/directoryAudits", get(graph::directory_audits))
            .route("/v1.0/auditLogs/signIns", get(graph::sign_ins))
            .route(
                "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments/{name}",
                get(authorization::read_or_delete_assignment)
                    .put(authorization::put_assignment)
                    .delete(authorization::read_or_delete_assignment),
            )
            .route("/subscriptions/{subscription}/providers/Microsoft.Authorization/permissions", get(authorization::permissions))
            .route("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions", get(authorization::role_definitions))
            .route("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{id}", get(authorization::role_definition))
            .route("/v1.0/{*path}", any(directory::serve))
            .with_state(shared.clone());
        let tls_listener =
            tls::TlsListener::new(listener, certificates.server).map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(tls_listener, app).await {
                tracing::error!(error = %e, "fake Azure stopped");
            }
        });
        Ok(FakeAzure {
            shared,
            address,
            ca_pem: certificates.ca_pem,
        })
    }

    /// `https://127.0.0.1:<port>`: the authority host, the ARM endpoint and the Graph endpoint at once.
    pub fn url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The CA that signed the server's certificate; clients must trust it.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.shared))
    }

    /// A service principal that authenticates with a client secret; answers its object id.
    pub fn add_client_secret(&self, tenant_id: &str, client_id: &str, secret: &str) -> String {
        self.add_identity(tenant_id, client_id, Some(secret.to_owned()), None)
    }

    /// An identity federated with a Kubernetes service account (workload identity): client
    /// assertions whose `sub` is `subject` and `aud` is `api://AzureADTokenExchange` are accepted.
    /// Answers its object id.
    pub fn add_federated_identity(
        &self,
        tenant_id: &str,
        client_id: &str,
        subject: &str,
    ) -> String {
        self.add_identity(tenant_id, client_id, None, Some(subject.to_owned()))
    }

    fn add_identity(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: Option<String>,
        federated_subject: Option<String>,
    ) -> String {
        self.with(|s| {
            let object_id = s.next_guid();
            s.identities.insert(
                client_id.to_owned(),
                Identity {
                    tenant_id: tenant_id.to_owned(),
                    object_id: object_id.clone(),
                    display_name: format!("identity {client_id}"),
                    secrets: secret.into_iter().collect(),
                    federated_subjects: federated_subject.into_iter().collect(),
                    replicated: true,
                    graph_permissions: Default::default(),
                },
            );
            object_id
        })
    }

    /// Whether ARM sees `client_id`'s service principal yet (see [`FakeAzure::replicate`]).
    pub fn hide_from_arm(&self, client_id: &str) {
        self.with(|s| {
            if let Some(identity) = s.identities.get_mut(client_id) {
                identity.replicated = false;
            }
        });
    }

    /// Entra finishes replicating `client_id`: ARM accepts role assignments for it from now on.
    pub fn replicate(&self, client_id: &str) {
        self.with(|s| {
            if let Some(identity) = s.identities.get_mut(client_id) {
                identity.replicated = true;
            }
        });
    }

    /// Whether service principals created through Graph are visible to ARM at once (the
    /// default) or only after [`FakeAzure::replicate`].
    pub fn set_principal_replication(&self, immediate: bool) {
        self.with(|s| s.replicate_new_principals = immediate);
    }

    pub fn add_subscription(&self, subscription_id: &str, tenant_id: &str) {
        self.with(|s| {
            s.subscriptions.insert(
                subscription_id.to_owned(),
                Subscription {
                    display_name: format!("Subscription {subscription_id}"),
                    tenant_id: tenant_id.to_owned(),
                    ..Subscription::default()
                },
            );
        });
    }

    /// Gives `client_id` Reader on the subscription.
    pub fn grant_reader(&self, client_id: &str, subscription_id: &str) {
        self.grant_role(
            client_id,
            subscription_id,
            azlog_operator::authorization::role::READER.id,
        );
    }

    /// Assigns the role with GUID `role` to `client_id` on the subscription, as an administrator
    /// would in the portal (an assignment name of its own).
    pub fn grant_role(&self, client_id: &str, subscription_id: &str, role: &str) {
        self.with(|s| {
            let Some(principal_id) = s.identities.get(client_id).map(|i| i.object_id.clone())
            else {
                return;
            };
            let name = s.next_guid();
            s.role_assignments.push(RoleAssignment {
                name,
                subscription: subscription_id.to_owned(),
                role: role.to_owned(),
                principal_id,
            });
        });
    }

    /// Removes every role `client_id` holds on the subscription.
    pub fn revoke_reader(&self, client_id: &str, subscription_id: &str) {
        self.with(|s| {
            let Some(principal_id) = s.identities.get(client_id).map(|i| i.object_id.clone())
            else {
                return;
            };
            s.role_assignments
                .retain(|a| !(a.subscription == subscription_id && a.principal_id == principal_id));
        });
    }

    /// Lets `client_id` read Entra audit logs (AuditLog.Read.All).
    pub fn grant_directory_reader(&self, client_id: &str) {
        self.grant_graph_permission(client_id, "AuditLog.Read.All");
    }

    /// Gives `client_id` a Microsoft Graph application permission (admin consent done).
    pub fn grant_graph_permission(&self, client_id: &str, permission: &str) {
        self.with(|s| {
            if let Some(identity) = s.identities.get_mut(client_id) {
                identity.graph_permissions.insert(permission.to_owned());
            }
        });
    }

    /// Takes a Microsoft Graph application permission away from `client_id`.
    pub fn revoke_graph_permission(&self, client_id: &str, permission: &str) {
        self.with(|s| {
            if let Some(identity) = s.identities.get_mut(client_id) {
                identity.graph_permissions.remove(permission);
            }
        });
    }

    /// Every role assignment, on every subscription.
    pub fn role_assignments(&self) -> Vec<RoleAssignment> {
        self.with(|s| s.role_assignments.clone())
    }

    /// Every Graph app role assignment.
    pub fn app_role_assignments(&self) -> Vec<AppRoleAssignment> {
        self.with(|s| s.app_role_assignments.clone())
    }

    /// The client ids of the application registrations made through Graph.
    pub fn applications(&self) -> Vec<String> {
        self.with(|s| s.applications.keys().cloned().collect())
    }

    /// The federated subjects of application `client_id`.
    pub fn federated_subjects(&self, client_id: &str) -> Vec<String> {
        self.with(|s| s.credentials(client_id).1)
    }

    /// The service principal object id of `client_id`.
    pub fn object_id(&self, client_id: &str) -> Option<String> {
        self.with(|s| s.identities.get(client_id).map(|i| i.object_id.clone()))
    }

    /// The client a token was issued to for `audience`, while it is valid.
    pub fn token_holder(&self, token: &str, audience: Audience) -> Option<String> {
        self.with(|s| {
            s.tokens
                .get(token)
                .filter(|t| t.audience == audience && t.expires > std::time::Instant::now())
                .map(|t| t.client_id.clone())
        })
    }

    /// Invalidates every token issued so far: the next call with one gets 401.
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with(|s| s.token_lifetime = lifetime);
    }

    /// Every ARM and Graph answer from now on takes `latency` (the public endpoints take tens to
    /// hundreds of milliseconds).
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }

    /// Leaves `reads` in the subscription's ARM read bucket.
    pub fn set_remaining_reads(&self, subscription_id: &str, reads: f64) {
        self.with_subscription(subscription_id, |sub| sub.reads.set(reads));
    }

    /// Changes subscription `id`, if there is one.
    fn with_subscription(&self, id: &str, change: impl FnOnce(&mut Subscription)) {
        self.with(|s| {
            if let Some(sub) = s.subscriptions.get_mut(id) {
                change(sub);
            }
        });
    }

    pub fn set_page_size(&self, size: usize) {
        self.with(|s| s.page_size = size.max(1));
    }

    pub fn set_duplicate_page_boundaries(&self, on: bool) {
        self.with(|s| s.duplicate_page_boundaries = on);
    }

    pub fn push_activity(&self, subscription_id: &str, event: Value) {
        self.with_subscription(subscription_id, |sub| sub.activity.push(event));
    }

    pub fn push_alert(&self, subscription_id: &str, alert: Value) {
        self.with_subscription(subscription_id, |sub| sub.alerts.push(alert));
    }

    /// Changes the status of the subscription's alert named `name` (Active → Resolved), as Defender
    /// for Cloud does in place.
    pub fn set_alert_status(&self, subscription_id: &str, name: &str, status: &str) {
        self.with_subscription(subscription_id, |sub| {
            for alert in sub.alerts.iter_mut().filter(|a| a["name"] == name) {
                alert["properties"]["status"] = Value::from(status);
            }
        });
    }

    pub fn push_directory_audit(&self, record: Value) {
        self.with(|s| s.directory_audits.push(record));
    }

    pub fn push_sign_in(&self, record: Value) {
        self.with(|s| s.sign_ins.push(record));
    }

    /// Queues a fault for the next request to `api` (faults for one API apply in order).
    pub fn inject(&self, api: Api, fault: Fault) {
        self.with(|s| s.faults.push_back((api, fault)));
    }

    /// Every request served so far.
    pub fn served(&self) -> Vec<Served> {
        self.with(|s| s.served.clone())
    }

    /// How many requests `api` served.
    /// The most per-subscription listing requests answered at once: of one subscription, and in
    /// all.
    pub fn most_listings_in_flight(&self) -> (usize, usize) {
        self.with(|s| s.most_in_flight)
    }

    pub fn calls(&self, api: Api) -> usize {
        self.with(|s| s.served.iter().filter(|r| r.api == api).count())
    }
}
