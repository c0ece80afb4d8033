//! The `SubscriptionAuthorization` custom resource: Azure access for the identity LogSources
//! collect with (azlog's `createazureid`, `authorize` and `authorizedirectoryreader`), declared
//! instead of run by hand.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::log_source::SecretKeyRef;
use azlog_config::Cloud;

/// Grants an identity the Azure access LogSources need: a role (Reader by default) on
/// subscriptions, and optionally the Microsoft Graph permission to read Entra audit logs. It is
/// the only azlog resource that changes anything outside the cluster: deleting it removes exactly
/// what it created unless `deletionPolicy` is Retain.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "azlog.io",
    version = "v1alpha1",
    kind = "SubscriptionAuthorization",
    namespaced,
    status = "SubscriptionAuthorizationStatus",
    shortname = "subauth",
    category = "azlog",
    printcolumn = r#"{"name":"Principal","type":"string","jsonPath":".status.principalId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAuthorizationSpec {
    /// The Entra ID tenant (directory) id, a GUID.
    pub tenant_id: String,
    /// Subscription ids (GUIDs) to grant the role on. Empty means every subscription the admin
    /// credential can list, as azlog's `authorize` without an id did; a subscription that
    /// appears later is granted at the next resync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_ids: Vec<String>,
    /// The identity to authorise.
    pub principal: Principal,
    /// The Azure role to assign on each subscription: a built-in role name (Reader, Security
    /// Reader, Monitoring Reader…) or a role definition id (a GUID) for any other role. Default
    /// Reader; securityAlerts sources need Reader or Security Reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Also grant the Microsoft Graph application permission AuditLog.Read.All, which
    /// entraAudit sources need (an app role assignment; the admin credential needs
    /// AppRoleAssignment.ReadWrite.All to grant it, which is admin consent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_logs: Option<bool>,
    /// The credential of an administrator allowed to create role assignments (User Access
    /// Administrator or Owner on each subscription; Application.ReadWrite.All in Graph for
    /// `principal.create`). The Secret must carry the label `azlog.io/admin-credential=true`.
    /// Absent: the operator's own workload identity, in the namespaces the cluster admin allows
    /// (`policy.operatorIdentityNamespaces`), so that no admin secret exists at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_credential_ref: Option<AdminCredentialRef>,
    /// Delete (default): deleting this resource removes the role assignments, Graph permission
    /// and application it created, and nothing else. Retain: they stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// The Azure cloud (default AzureCloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
}

/// The identity to authorise: exactly one of `clientId`, `objectId` or `create`. Prefer the
/// workload identity or managed identity the collector already runs as: then no secret exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// Application (client) id of an existing workload identity, managed identity or service
    /// principal; its service principal is looked up in Graph (needs Application.Read.All).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Object id of an existing service principal (no Graph lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Create an application and service principal for azlog (azlog's `createazureid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreatePrincipal>,
}

/// A new application registration and its service principal. Prefer `federatedCredential`: the
/// collector's ServiceAccount token is exchanged for an Entra token, so no secret exists anywhere.
/// Set at least one of the two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePrincipal {
    /// Display name of the new application.
    pub display_name: String,
    /// Trust tokens of a Kubernetes ServiceAccount (workload identity federation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_credential: Option<FederatedCredential>,
    /// Create a client secret and keep it in a Secret of this namespace, where workload identity
    /// is not available. It is renewed when a quarter of its validity remains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretTarget>,
}

/// Where a created client secret is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretTarget {
    /// The Secret to write (keys tenantId, clientId, clientSecret; labelled so LogSources may
    /// mount it). It must not exist, or be this resource's; it is deleted with this resource.
    pub secret_name: String,
    /// How long each secret is valid (default 180d; Entra allows at most two years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
}

/// A federated identity credential for a ServiceAccount: subject
/// `system:serviceaccount:<namespace>:<serviceAccount>`, audience `api://AzureADTokenExchange`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    /// The cluster's service account issuer URL (the OIDC issuer, e.g. the AKS cluster's
    /// `oidcIssuerProfile.issuerUrl`).
    pub issuer: String,
    /// The ServiceAccount in this namespace: a LogSource's collector runs as `azlog-<name>`.
    pub service_account: String,
}

/// The administrator's credential: a service principal's client id and a Secret key holding its
/// client secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredentialRef {
    /// Application (client) id of the administrator's service principal.
    pub client_id: String,
    /// The Secret key with its client secret; the Secret needs the label
    /// `azlog.io/admin-credential=true`.
    pub client_secret: SecretKeyRef,
}

/// What happens to what this resource created in Azure when it is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the role assignments, Graph permission and application this resource created.
    #[default]
    Delete,
    /// Keep them.
    Retain,
}

/// What is granted and what is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAuthorizationStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Object id of the authorised service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The application this resource created (`principal.create`); its ids are empty while it is
    /// being created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<CreatedApplication>,
    /// The role assignment on each subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionGrant>,
    /// The AuditLog.Read.All grant, when `auditLogs` is set (or was, until it is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_logs: Option<Grant>,
    /// Permissions the admin credential lacks, in words an administrator can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_permissions: Vec<String>,
    /// Ready: everything declared is granted. Reconciling and Stalled follow the kstatus
    /// conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// An application registration created for this resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApplication {
    /// Its client id: what a LogSource's credential names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The application object's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The client secret in use, when `create.clientSecret` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<CreatedSecret>,
}

/// A client secret this resource created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSecret {
    /// The Secret holding it.
    pub secret_name: String,
    /// The password credential's key id in Entra ID.
    pub key_id: String,
    /// When it stops working (RFC 3339); it is renewed well before.
    pub expires: String,
}

/// The role assignment on one subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGrant {
    /// The subscription id.
    pub subscription_id: String,
    #[serde(flatten)]
    pub grant: Grant,
}

/// One grant's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// Granted: made by this resource. PreExisting: the principal already held it through an
    /// assignment this resource did not make (never removed by it). Pending: waiting for Azure
    /// (a new principal not replicated yet, throttling, an outage). Failed: needs a human; see
    /// `message`. Granting: being created (kept across an operator restart). Removing: being
    /// removed.
    pub state: GrantState,
    /// The role assignment's or app role assignment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What went wrong last, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GrantState {
    #[default]
    Pending,
    Granting,
    Granted,
    PreExisting,
    Failed,
    Removing,
}
