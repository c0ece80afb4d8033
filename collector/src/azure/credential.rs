//! Entra ID tokens through `azure_identity`: client secret, workload identity or managed identity.
//!
//! The credential is built from the configuration, with the collector's own HTTP client (so the
//! configured CA applies to the token endpoint too) and the cloud's authority host. A 401 from an API
//! means the cached token is no longer accepted (revoked, or the identity changed); the credential is
//! then rebuilt so the next request carries a fresh token instead of the cached one until it expires.

use std::sync::{Arc, Mutex};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::{Audience, Endpoints};
use crate::config::CredentialConfig;

/// Hands out bearer tokens for ARM and Graph.
pub struct Tokens {
    config: CredentialConfig,
    options: ClientOptions,
    credential: Mutex<Arc<dyn TokenCredential>>,
    endpoints: Endpoints,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("authority_host", &self.endpoints.authority_host)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(
        config: CredentialConfig,
        endpoints: Endpoints,
        http: reqwest::Client,
    ) -> Result<Tokens, String> {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = endpoints.authority_host.clone();
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            cloud: Some(Arc::new(CloudConfiguration::from(custom))),
            ..ClientOptions::default()
        };
        let credential = build(&config, &options)?;
        Ok(Tokens {
            config,
            options,
            credential: Mutex::new(credential),
            endpoints,
        })
    }

    fn current(&self) -> Arc<dyn TokenCredential> {
        self.credential
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A bearer token for `audience`; `azure_identity` caches it until shortly before it expires.
    pub async fn bearer(&self, audience: Audience) -> Result<Secret, String> {
        let credential = self.current();
        let token = credential
            .get_token(&[self.endpoints.scope(audience)], None)
            .await
            .map_err(|e| describe(&e))?;
        Ok(token.token)
    }

    /// Drops the cached tokens: the API refused one before it expired.
    pub fn renew(&self) {
        match build(&self.config, &self.options) {
            Ok(fresh) => {
                *self
                    .credential
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "failed to rebuild the Azure credential"),
        }
    }
}

fn build(
    config: &CredentialConfig,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    let client_options = options.clone();
    match config {
        CredentialConfig::ClientSecret(c) => {
            let secret = std::fs::read_to_string(&c.secret_file).map_err(|e| {
                format!(
                    "failed to read the client secret from {}: {e}",
                    c.secret_file.display()
                )
            })?;
            let credential = ClientSecretCredential::new(
                &c.tenant_id,
                c.client_id.clone(),
                Secret::from(secret.trim_end().to_owned()),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(|e| format!("failed to set up the client secret credential: {e}"))?;
            Ok(credential)
        }
        CredentialConfig::WorkloadIdentity(c) => {
            let credential =
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions { client_options },
                    client_id: c.client_id.clone(),
                    tenant_id: c.tenant_id.clone(),
                    token_file_path: c.token_file.clone(),
                }))
                .map_err(|e| format!("failed to set up the workload identity credential: {e}"))?;
            Ok(credential)
        }
        CredentialConfig::ManagedIdentity(c) => {
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: c.client_id.clone().map(UserAssignedId::ClientId),
                    client_options,
                }))
                .map_err(|e| format!("failed to set up the managed identity credential: {e}"))?;
            Ok(credential)
        }
    }
}

/// The credential error with its cause chain; Entra's AADSTS message is the part a human acts on.
fn describe(error: &azure_core::Error) -> String {
    let mut text = format!("failed to get an Entra ID token: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    crate::redact::redact(&text).into_owned()
}
