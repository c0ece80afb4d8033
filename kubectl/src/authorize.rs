//! `kubectl azlog authorize` and `createazureid`: SubscriptionAuthorizations from azlog.exe's
//! arguments, checked by the operator's own planning before anything is sent.

use azlog_operator::authorization::plan;
use azlog_operator::crd::SubscriptionAuthorization;
use kube::api::Api;
use serde_json::{Value, json};

use crate::cluster::{self, Target};
use crate::{Failure, print};

/// What both verbs share: the tenant, the role, the admin credential, the resource's name.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The Entra ID tenant id.
    #[arg(long)]
    pub tenant: String,
    /// The role to assign (default Reader): a built-in name or a role definition id.
    #[arg(long)]
    pub role: Option<String>,
    /// Also grant AuditLog.Read.All, for entra-audit sources (azlog authorizedirectoryreader).
    #[arg(long)]
    pub audit_logs: bool,
    /// The administrator's application (client) id; without it, the operator's own identity
    /// (where the cluster admin allows that).
    #[arg(long, requires = "admin_secret")]
    pub admin_client_id: Option<String>,
    /// The Secret with the administrator's client secret, as SECRET or SECRET/KEY (key default
    /// clientSecret); it needs the label azlog.io/admin-credential=true.
    #[arg(long, value_name = "SECRET[/KEY]", requires = "admin_client_id")]
    pub admin_secret: Option<String>,
    /// Keep the grants when the SubscriptionAuthorization is deleted.
    #[arg(long)]
    pub retain: bool,
    /// Print the SubscriptionAuthorization as YAML instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// Subscription ids; none means every subscription the admin credential can list.
    pub subscriptions: Vec<String>,
    /// The identity's application (client) id.
    #[arg(
        long,
        conflicts_with = "object_id",
        required_unless_present = "object_id"
    )]
    pub client_id: Option<String>,
    /// The identity's service principal object id.
    #[arg(long)]
    pub object_id: Option<String>,
    /// The SubscriptionAuthorization's name (default: derived from the identity).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Subscription ids to grant on; none means every subscription the admin credential can list.
    pub subscriptions: Vec<String>,
    /// The new application's display name.
    #[arg(long, default_value = "azlog collector")]
    pub display_name: String,
    /// The ServiceAccount whose tokens sign in (a LogSource NAME's collector runs as azlog-NAME).
    #[arg(long)]
    pub service_account: String,
    /// The cluster's OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl).
    #[arg(long)]
    pub issuer: String,
    /// The SubscriptionAuthorization's name.
    #[arg(long, default_value = "azlog-collector")]
    pub name: String,
    #[command(flatten)]
    pub common: Common,
}

fn resource(
    name: &str,
    namespace: &str,
    principal: Value,
    subscriptions: &[String],
    common: &Common,
) -> Result<SubscriptionAuthorization, Failure> {
    let mut spec = json!({
        "tenantId": common.tenant,
        "principal": principal,
    });
    if !subscriptions.is_empty() {
        spec["subscriptionIds"] = json!(subscriptions);
    }
    if let Some(role) = &common.role {
        spec["role"] = role.as_str().into();
    }
    if common.audit_logs {
        spec["auditLogs"] = true.into();
    }
    if common.retain {
        spec["deletionPolicy"] = "Retain".into();
    }
    if let (Some(client_id), Some(secret)) = (&common.admin_client_id, &common.admin_secret) {
        let (secret, key) = secret.split_once('/').unwrap_or((secret, "clientSecret"));
        spec["adminCredentialRef"] =
            json!({"clientId": client_id, "clientSecret": {"name": secret, "key": key}});
    }
    let object = json!({
        "apiVersion": "azlog.io/v1alpha1", "kind": "SubscriptionAuthorization",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    });
    let mut resource: SubscriptionAuthorization = serde_json::from_value(object)
        .map_err(|e| Failure(format!("cannot build the SubscriptionAuthorization: {e}")))?;
    // The operator's own checks; a uid stands in for the one the API server gives.
    let mut checked = resource.clone();
    checked.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    plan::plan(&checked).map_err(|problems| Failure(problems.join("\n  ")))?;
    resource.metadata.uid = None;
    Ok(resource)
}

/// Prints the SubscriptionAuthorization (`--dry-run`) or applies it.
async fn submit(
    target: &Target,
    name: &str,
    principal: Value,
    subscriptions: &[String],
    common: &Common,
) -> Result<(), Failure> {
    // Built and checked before connecting: a mistake costs no request. The namespace only names
    // where the resource goes, so the one connected to replaces the hint.
    let hint = target.namespace.as_deref().unwrap_or("default");
    let mut resource = resource(name, hint, principal, subscriptions, common)?;
    if common.dry_run {
        resource.metadata.namespace = target.namespace.clone();
        print(&cluster::yaml(&resource)?);
        return Ok(());
    }
    let (client, namespace) = cluster::connect(target).await?;
    resource.metadata.namespace = Some(namespace.clone());
    let api: Api<SubscriptionAuthorization> = Api::namespaced(client, &namespace);
    cluster::apply(&api, name, &resource).await?;
    print(&format!(
        "subscriptionauthorization.azlog.io/{name} applied in namespace {namespace}; follow it with: kubectl get subauth {name} -n {namespace} -w\n"
    ));
    Ok(())
}

pub async fn authorize(target: &Target, args: AuthorizeArgs) -> Result<(), Failure> {
    let (principal, id) = match (&args.client_id, &args.object_id) {
        (Some(id), _) => (json!({"clientId": id}), id),
        (None, Some(id)) => (json!({"objectId": id}), id),
        (None, None) => return Err(Failure("give --client-id or --object-id".into())),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("azlog-{}", id.to_ascii_lowercase()));
    submit(target, &name, principal, &args.subscriptions, &args.common).await
}

pub async fn create(target: &Target, args: CreateArgs) -> Result<(), Failure> {
    let principal = json!({"create": {
        "displayName": args.display_name,
        "federatedCredential": {"issuer": args.issuer, "serviceAccount": args.service_account},
    }});
    submit(
        target,
        &args.name,
        principal,
        &args.subscriptions,
        &args.common,
    )
    .await
}
