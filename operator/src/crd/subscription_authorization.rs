//! The `SubscriptionAuthorization` custom resource: Azure roles for the identity LogSources use
//! (azlog's `createazureid`, `authorize` and `authorizedirectoryreader`). Its controller is built
//! separately; these are its types, so the CRD is installed with the LogSource one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::log_source::SecretKeyRef;
use azlog_config::Cloud;

/// Grants an identity the Azure roles LogSources need: Reader (or another role) on subscriptions,
/// and optionally Directory Readers in Entra ID. It is the only azlog resource that changes
/// anything outside the cluster, so deleting it removes the role assignments it made unless
/// `deletionPolicy` is Retain.
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
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAuthorizationSpec {
    /// The Entra ID tenant (directory) id.
    pub tenant_id: String,
    /// Subscriptions to grant the role on; empty means every subscription the admin credential can
    /// see (azlog's `authorize` without an id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_ids: Vec<String>,
    /// The identity to authorise.
    pub principal: Principal,
    /// The Azure role to assign on each subscription (default Reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Also make the identity a Directory Reader, which entraAudit sources need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_reader: Option<bool>,
    /// The credential of an administrator allowed to create role assignments (User Access
    /// Administrator or Owner): a Secret with tenantId, clientId and clientSecret keys.
    pub admin_credential_ref: AdminCredentialRef,
    /// Delete (default) removes the role assignments when this resource is deleted; Retain keeps
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// The Azure cloud (default AzureCloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
}

/// The identity to authorise. Set `clientId` or `objectId`, or `create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// Application (client) id of a workload identity, managed identity or service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Object id of the service principal, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Create a new service principal for azlog (azlog's `createazureid`); its client secret is
    /// written to the Secret named here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreatePrincipal>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePrincipal {
    /// Display name of the new application.
    pub display_name: String,
    /// The Secret to write the new client secret to.
    pub secret_name: String,
}

/// The administrator's credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredentialRef {
    /// The client secret of the administrator's service principal.
    pub client_secret: SecretKeyRef,
    /// Application (client) id of the administrator's service principal.
    pub client_id: String,
}

/// What happens to the role assignments when the resource is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the role assignments this resource made.
    Delete,
    /// Keep them.
    Retain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAuthorizationStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Object id of the authorised service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The role assignment made on each subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_assignments: Vec<RoleAssignment>,
    /// Permissions the admin credential lacks, in words an administrator can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_permissions: Vec<String>,
    /// Ready: every role is assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// The subscription.
    pub subscription_id: String,
    /// The role assignment's resource id.
    pub id: String,
}
