//! `azure`: which cloud, its endpoints, and the credential the collector signs in with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::path::{At, Files, Problems};
use crate::text::{is_guid, is_tenant};

/// Where Azure is and who the collector is there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureConfig {
    #[serde(default)]
    pub cloud: Cloud,
    /// Endpoints that replace the cloud's (private clouds, proxies, test services).
    #[serde(default)]
    pub endpoints: EndpointOverrides,
    /// PEM file of the CA(s) to trust for these endpoints instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Required by the ARM and Graph sources; storage sources may use a key or SAS instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialConfig>,
}

/// A national cloud: it picks the login, ARM and Graph endpoints and the token scopes.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Cloud {
    #[default]
    AzureCloud,
    AzureUSGovernment,
    AzureChinaCloud,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointOverrides {
    /// Entra ID token authority, e.g. https://login.microsoftonline.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    /// Azure Resource Manager, e.g. https://management.azure.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_manager: Option<String>,
    /// Microsoft Graph, e.g. https://graph.microsoft.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
}

/// How the collector gets its Entra ID tokens. Secrets are read from files (mounted Secrets), never
/// written in this file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CredentialConfig {
    /// A service principal with a client secret.
    ClientSecret(ClientSecretCredentialConfig),
    /// Workload identity federation: a Kubernetes service account token exchanged for an Entra
    /// token. Unset fields come from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE,
    /// which the workload identity webhook sets.
    WorkloadIdentity(WorkloadIdentityCredentialConfig),
    /// The managed identity of the node or pod (system-assigned, or user-assigned by client id).
    ManagedIdentity(ManagedIdentityCredentialConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSecretCredentialConfig {
    pub tenant_id: String,
    pub client_id: String,
    /// File holding the client secret (trailing whitespace is ignored).
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadIdentityCredentialConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The projected service account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIdentityCredentialConfig {
    /// Client id of a user-assigned identity; absent means the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl AzureConfig {
    pub(crate) fn validate(&self, at: &At, files: Files, problems: &mut Problems) {
        let endpoints = [
            ("authorityHost", &self.endpoints.authority_host),
            ("resourceManager", &self.endpoints.resource_manager),
            ("graph", &self.endpoints.graph),
        ];
        for (field, value) in endpoints {
            let field = format!("endpoints.{field}");
            if let Some(url) = value {
                match url::Url::parse(url) {
                    Ok(parsed) if parsed.scheme() == "https" && parsed.host().is_some() => {}
                    Ok(_) => problems.add(
                        at,
                        &field,
                        format!(
                            "{url:?} must be an https:// URL: tokens are never sent in clear text"
                        ),
                    ),
                    Err(e) => problems.add(at, &field, format!("{url:?} is not a URL: {e}")),
                }
            }
        }
        if let Some(ca) = &self.ca_file
            && files.missing(ca)
        {
            problems.add(at, "caFile", format!("{} does not exist", ca.display()));
        }
        match &self.credential {
            None => {}
            Some(CredentialConfig::ClientSecret(c)) => {
                let field = |name: &str| format!("credential.clientSecret.{name}");
                if !is_guid(&c.client_id) {
                    problems.add(
                        at,
                        &field("clientId"),
                        format!(
                            "{:?} is not a client (application) id (a GUID)",
                            c.client_id
                        ),
                    );
                }
                if !is_tenant(&c.tenant_id) {
                    problems.add(
                        at,
                        &field("tenantId"),
                        format!(
                            "{:?} is not a tenant id (a GUID or a domain such as contoso.onmicrosoft.com)",
                            c.tenant_id
                        ),
                    );
                }
                if files.missing(&c.secret_file) {
                    problems.add(
                        at,
                        &field("secretFile"),
                        format!(
                            "{} does not exist; mount the Secret holding the client secret there",
                            c.secret_file.display()
                        ),
                    );
                }
            }
            Some(CredentialConfig::WorkloadIdentity(c)) => {
                if let Some(id) = &c.client_id
                    && !is_guid(id)
                {
                    problems.add(
                        at,
                        "credential.workloadIdentity.clientId",
                        format!("{id:?} is not a client id (a GUID)"),
                    );
                }
                if let Some(tenant) = &c.tenant_id
                    && !is_tenant(tenant)
                {
                    problems.add(
                        at,
                        "credential.workloadIdentity.tenantId",
                        format!("{tenant:?} is not a tenant id"),
                    );
                }
            }
            Some(CredentialConfig::ManagedIdentity(c)) => {
                if let Some(id) = &c.client_id
                    && !is_guid(id)
                {
                    problems.add(
                        at,
                        "credential.managedIdentity.clientId",
                        format!("{id:?} is not a client id (a GUID)"),
                    );
                }
            }
        }
    }
}

/// Which API a token is for; each has its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    ResourceManager,
    Graph,
    Storage,
    EventHubs,
}

/// The resolved endpoints and token scopes for one collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authority_host: String,
    pub resource_manager: String,
    pub graph: String,
    /// Storage account host suffix: `<account>.table.<suffix>`, `<account>.blob.<suffix>`.
    pub storage_suffix: String,
    /// Event Hubs namespace host suffix: `<namespace>.<suffix>`.
    pub event_hubs_suffix: String,
    resource_manager_scope: String,
    graph_scope: String,
}

impl Endpoints {
    /// The cloud's endpoints with any overrides applied. Scopes always follow the cloud: a proxy or
    /// test service in front of ARM still issues tokens for ARM.
    pub fn resolve(config: &AzureConfig) -> Endpoints {
        let (authority, arm, graph, storage, event_hubs) = match config.cloud {
            Cloud::AzureCloud => (
                "https://login.microsoftonline.com",
                "https://management.azure.com",
                "https://graph.microsoft.com",
                "core.windows.net",
                "servicebus.windows.net",
            ),
            Cloud::AzureUSGovernment => (
                "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net",
                "https://graph.microsoft.us",
                "core.usgovcloudapi.net",
                "servicebus.usgovcloudapi.net",
            ),
            Cloud::AzureChinaCloud => (
                "https://login.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "core.chinacloudapi.cn",
                "servicebus.chinacloudapi.cn",
            ),
        };
        let pick = |over: &Option<String>, default: &str| {
            over.as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_owned()
        };
        let o = &config.endpoints;
        Endpoints {
            authority_host: pick(&o.authority_host, authority),
            resource_manager: pick(&o.resource_manager, arm),
            graph: pick(&o.graph, graph),
            storage_suffix: storage.to_owned(),
            event_hubs_suffix: event_hubs.to_owned(),
            resource_manager_scope: format!("{arm}/.default"),
            graph_scope: format!("{graph}/.default"),
        }
    }

    pub fn scope(&self, audience: Audience) -> &str {
        match audience {
            Audience::ResourceManager => &self.resource_manager_scope,
            Audience::Graph => &self.graph_scope,
            // Storage has one audience in every cloud.
            Audience::Storage => "https://storage.azure.com/.default",
            // So has Event Hubs.
            Audience::EventHubs => "https://eventhubs.azure.net/.default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(cloud: Cloud) -> AzureConfig {
        AzureConfig {
            cloud,
            ..AzureConfig::default()
        }
    }

    #[test]
    fn each_cloud_has_its_own_endpoints_and_scopes() {
        let gov = Endpoints::resolve(&azure(Cloud::AzureUSGovernment));
        assert_eq!(gov.resource_manager, "https://management.usgovcloudapi.net");
        assert_eq!(
            gov.scope(Audience::Graph),
            "https://graph.microsoft.us/.default"
        );
        let china = Endpoints::resolve(&azure(Cloud::AzureChinaCloud));
        assert_eq!(china.authority_host, "https://login.chinacloudapi.cn");
        assert_eq!(
            china.scope(Audience::ResourceManager),
            "https://management.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn overridden_endpoints_keep_the_clouds_scopes() {
        let mut config = azure(Cloud::AzureCloud);
        config.endpoints.resource_manager = Some("https://127.0.0.1:8443/".into());
        let endpoints = Endpoints::resolve(&config);
        assert_eq!(endpoints.resource_manager, "https://127.0.0.1:8443");
        assert_eq!(
            endpoints.scope(Audience::ResourceManager),
            "https://management.azure.com/.default"
        );
        assert_eq!(endpoints.graph, "https://graph.microsoft.com");
    }
}
