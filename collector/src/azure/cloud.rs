//! National clouds and their endpoints.

use crate::config::{AzureConfig, Cloud};

/// Which API a token is for; each has its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    ResourceManager,
    Graph,
    Storage,
}

/// The resolved endpoints and token scopes for one collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authority_host: String,
    pub resource_manager: String,
    pub graph: String,
    /// Storage account host suffix: `<account>.table.<suffix>`, `<account>.blob.<suffix>`.
    pub storage_suffix: String,
    resource_manager_scope: String,
    graph_scope: String,
}

impl Endpoints {
    /// The cloud's endpoints with any overrides applied. Scopes always follow the cloud: a proxy or
    /// test service in front of ARM still issues tokens for ARM.
    pub fn resolve(config: &AzureConfig) -> Endpoints {
        let (authority, arm, graph, storage) = match config.cloud {
            Cloud::AzureCloud => (
                "https://login.microsoftonline.com",
                "https://management.azure.com",
                "https://graph.microsoft.com",
                "core.windows.net",
            ),
            Cloud::AzureUSGovernment => (
                "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net",
                "https://graph.microsoft.us",
                "core.usgovcloudapi.net",
            ),
            Cloud::AzureChinaCloud => (
                "https://login.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "core.chinacloudapi.cn",
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
