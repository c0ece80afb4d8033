//! The tokens a connection puts on `$cbs`: a shared access signature made from a connection
//! string's key, or an Entra ID token from the `azure` credential.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::Secret;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::azure::client::Api;
use crate::azure::{ApiError, Audience, AzureClient, encode_query};

/// How long a shared access signature this collector makes is valid.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);
/// How long an Entra ID token is taken to stay valid: `azure_identity` renews its cached token
/// minutes before it expires, and tokens are put again well within this.
const ENTRA_LIFETIME: Duration = Duration::from_secs(3600);

/// A token for `$cbs` put-token.
#[derive(Debug)]
pub struct Token {
    pub value: Secret,
    /// `servicebus.windows.net:sastoken` or `jwt`.
    pub kind: &'static str,
    pub expires: DateTime<Utc>,
}

/// Who the collector is to Event Hubs.
pub enum Credential {
    /// A shared access policy's key, from a connection string.
    SharedAccessKey { name: String, key: Secret },
    /// The `azure` credential (role Azure Event Hubs Data Receiver).
    Entra(Arc<AzureClient>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::SharedAccessKey { name, .. } => {
                write!(f, "SharedAccessKey({name})")
            }
            Credential::Entra(_) => f.write_str("Entra"),
        }
    }
}

/// What a connection string names.
#[derive(Debug)]
pub struct ConnectionString {
    /// The namespace host, from `Endpoint=sb://host/`.
    pub host: String,
    /// `EntityPath`, when the policy belongs to one hub.
    pub entity_path: Option<String>,
    pub credential: Credential,
}

impl ConnectionString {
    /// Reads a connection string from a file (a mounted Secret). Errors never quote the file: it
    /// holds a key.
    pub fn read(path: &Path) -> Result<ConnectionString, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "failed to read the connection string from {}: {e}",
                path.display()
            )
        })?;
        ConnectionString::parse(text.trim()).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<ConnectionString, String> {
        let (mut endpoint, mut name, mut key, mut entity_path) = (None, None, None, None);
        for part in text.split(';').filter(|p| !p.trim().is_empty()) {
            let (field, value) = part
                .split_once('=')
                .ok_or("the connection string is not a list of Field=value separated by ';'")?;
            match field.trim() {
                "Endpoint" => endpoint = Some(value.trim()),
                "SharedAccessKeyName" => name = Some(value.trim()),
                "SharedAccessKey" => key = Some(value.trim()),
                "EntityPath" => entity_path = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or("the connection string has no Endpoint")?;
        let host = url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or("the connection string's Endpoint is not sb://<namespace host>/")?;
        let (Some(name), Some(key)) = (name, key) else {
            return Err(
                "the connection string has no SharedAccessKeyName and SharedAccessKey; copy it from the hub's shared access policy"
                    .into(),
            );
        };
        Ok(ConnectionString {
            host,
            entity_path,
            credential: Credential::SharedAccessKey {
                name: name.to_owned(),
                key: Secret::from(key.to_owned()),
            },
        })
    }
}

impl Credential {
    /// Event Hubs refused a token: an Entra token cached past its revocation is dropped, so the
    /// next connection fetches a new one. A signature is made fresh every time anyway.
    pub fn refused(&self) {
        if let Credential::Entra(client) = self {
            client.renew_token();
        }
    }

    /// A token for `audience` (`sb://<host>/<hub>`).
    pub async fn token(&self, audience: &str) -> Result<Token, ApiError> {
        match self {
            Credential::SharedAccessKey { name, key } => {
                let expires = Utc::now() + SAS_LIFETIME;
                Ok(Token {
                    value: Secret::from(shared_access_signature(
                        audience,
                        name,
                        key.secret(),
                        expires.timestamp(),
                    )),
                    kind: "servicebus.windows.net:sastoken",
                    expires,
                })
            }
            Credential::Entra(client) => {
                let api = Api {
                    name: "Event Hubs",
                    audience: Audience::EventHubs,
                    forbidden_hint: "give the identity the Azure Event Hubs Data Receiver role on the hub",
                };
                Ok(Token {
                    value: client.bearer(api).await?,
                    kind: "jwt",
                    expires: Utc::now() + ENTRA_LIFETIME,
                })
            }
        }
    }
}

/// `SharedAccessSignature sr=…&sig=…&se=…&skn=…`: an HMAC-SHA256 with the key of the encoded
/// resource and the expiry, as Service Bus and Event Hubs check it.
pub fn shared_access_signature(resource: &str, key_name: &str, key: &str, expiry: i64) -> String {
    let resource = encode_query(resource);
    let signed = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        format!("{resource}\n{expiry}").as_bytes(),
    );
    let signature = base64::engine::general_purpose::STANDARD.encode(signed.as_ref());
    format!(
        "SharedAccessSignature sr={resource}&sig={}&se={expiry}&skn={}",
        encode_query(&signature),
        encode_query(key_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_names_the_host_the_hub_and_the_key() {
        let parsed = ConnectionString::parse(
            "Endpoint=sb://contoso-logs.servicebus.windows.net/;SharedAccessKeyName=azlog-listen;SharedAccessKey=c2VjcmV0;EntityPath=insights-logs",
        )
        .expect("parses");
        assert_eq!(parsed.host, "contoso-logs.servicebus.windows.net");
        assert_eq!(parsed.entity_path.as_deref(), Some("insights-logs"));
        let debug = format!("{:?}", parsed.credential);
        assert_eq!(debug, "SharedAccessKey(azlog-listen)");
        for broken in [
            "Endpoint=sb://contoso-logs.servicebus.windows.net/",
            "SharedAccessKeyName=a;SharedAccessKey=b",
            "just text",
        ] {
            let e = ConnectionString::parse(broken).expect_err(broken);
            assert!(!e.contains("c2VjcmV0"));
        }
    }

    #[test]
    fn a_signature_covers_the_encoded_resource_and_expiry() {
        // Computed independently: printf 'sb%3A%2F%2Fhost%2Fhub\n1700000000' | openssl dgst -sha256 -hmac key -binary | base64
        let sas = shared_access_signature("sb://host/hub", "listen", "key", 1_700_000_000);
        assert_eq!(
            sas,
            "SharedAccessSignature sr=sb%3A%2F%2Fhost%2Fhub&sig=4TFPr%2BLotFRyy7k3oM8qjqBcnHSYMsqmW3BHCiEcZpk%3D&se=1700000000&skn=listen"
        );
    }
}
