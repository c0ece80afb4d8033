//! Calls to Entra ID, ARM and Microsoft Graph with the admin credential: client-credentials tokens
//! (cached per audience until shortly before they expire), JSON bodies, and the services' error
//! bodies turned into [`AzureError`]. The client secret is held only here, never formatted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use azlog_config::azure::{Audience, Endpoints};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::metrics::Metrics;

/// Which service a call went to, for errors and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Entra,
    Arm,
    Graph,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Entra => "Entra ID",
            Service::Arm => "Azure Resource Manager",
            Service::Graph => "Microsoft Graph",
        }
    }
}

/// A failed call: the service's own code and message, or a transport failure (no status).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} answered {}: {code}: {message}", service.name(), status.map_or("nothing".to_owned(), |s| format!("HTTP {s}")))]
pub struct AzureError {
    pub service: Service,
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl AzureError {
    /// Worth retrying soon: throttling, a server error, or no answer at all.
    pub fn transient(&self) -> bool {
        self.status.is_none_or(|s| s == 429 || s >= 500)
    }

    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status == Some(status) && self.code.eq_ignore_ascii_case(code)
    }
}

/// Whom the calls are made as.
pub struct AdminCredential {
    pub tenant_id: String,
    pub client_id: String,
    pub proof: Proof,
}

/// How the admin proves who it is to Entra ID.
pub enum Proof {
    /// A client secret, from the Secret the resource names.
    ClientSecret(String),
    /// The operator's own workload identity: a projected ServiceAccount token, read at each
    /// sign-in because the kubelet renews it.
    TokenFile(std::path::PathBuf),
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never the secret itself.
            Proof::ClientSecret(_) => f.write_str("ClientSecret(..)"),
            Proof::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
        }
    }
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredential")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for one admin credential.
pub struct AzureApi<'a> {
    http: &'a reqwest::Client,
    endpoints: Endpoints,
    credential: AdminCredential,
    tokens: Mutex<HashMap<&'static str, (String, Instant)>>,
    metrics: &'a Metrics,
}

impl std::fmt::Debug for AzureApi<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureApi")
            .field("endpoints", &self.endpoints)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// A successful answer: its status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl<'a> AzureApi<'a> {
    pub fn new(
        http: &'a reqwest::Client,
        endpoints: Endpoints,
        credential: AdminCredential,
        metrics: &'a Metrics,
    ) -> AzureApi<'a> {
        AzureApi {
            http,
            endpoints,
            credential,
            tokens: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    async fn token(&self, audience: Audience) -> Result<String, AzureError> {
        let scope = self.endpoints.scope(audience).to_owned();
        let key = match audience {
            Audience::Graph => "graph",
            _ => "arm",
        };
        if let Some((token, until)) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            && *until > Instant::now()
        {
            return Ok(token.clone());
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.endpoints.authority_host, self.credential.tenant_id
        );
        let proof = match &self.credential.proof {
            Proof::ClientSecret(secret) => vec![("client_secret", secret.clone())],
            Proof::TokenFile(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| AzureError {
                    service: Service::Entra,
                    status: None,
                    code: "TokenFileUnreadable".into(),
                    message: format!(
                        "cannot read the operator's ServiceAccount token {}: {e}",
                        path.display()
                    ),
                    retry_after: None,
                })?;
                vec![
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                    ),
                    ("client_assertion", token.trim().to_owned()),
                ]
            }
        };
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.credential.client_id.clone()),
            ("scope", scope.clone()),
        ];
        form.extend(proof);
        let request = self.http.post(url).form(&form);
        let answer = self.send(Service::Entra, request).await?;
        let token = answer.body["access_token"]
            .as_str()
            .ok_or_else(|| AzureError {
                service: Service::Entra,
                status: Some(answer.status.as_u16()),
                code: "NoAccessToken".into(),
                message: "the token answer holds no access_token".into(),
                retry_after: None,
            })?
            .to_owned();
        let lifetime = answer.body["expires_in"].as_u64().unwrap_or(300);
        // Renewed five minutes early, so a long reconcile never sends an expired token.
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(300).max(30));
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (token.clone(), until));
        Ok(token)
    }

    /// A request to `url` with a bearer token for `audience` and `body` as JSON.
    async fn request(
        &self,
        audience: Audience,
        method: Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<reqwest::RequestBuilder, AzureError> {
        let token = self.token(audience).await?;
        let request = self.http.request(method, url).bearer_auth(token);
        Ok(match body {
            Some(body) => request.json(body),
            None => request,
        })
    }

    /// An ARM call: `path` below the Resource Manager endpoint, query included.
    pub async fn arm(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, AzureError> {
        let url = format!("{}{path}", self.endpoints.resource_manager);
        let request = self
            .request(Audience::ResourceManager, method, url, body)
            .await?;
        self.send(Service::Arm, request).await
    }

    /// A Graph v1.0 call; `upsert` sends `Prefer: create-if-missing`.
    pub async fn graph(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        upsert: bool,
    ) -> Result<Answer, AzureError> {
        let url = format!("{}/v1.0/{path}", self.endpoints.graph);
        let mut request = self.request(Audience::Graph, method, url, body).await?;
        if upsert {
            request = request.header("prefer", "create-if-missing");
        }
        self.send(Service::Graph, request).await
    }

    async fn send(
        &self,
        service: Service,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, AzureError> {
        let label = match service {
            Service::Entra => "entra",
            Service::Arm => "arm",
            Service::Graph => "graph",
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .azure_requests
                    .with_label_values(&[label, "transport"])
                    .inc();
                return Err(AzureError {
                    service,
                    status: None,
                    code: "Unreachable".into(),
                    // Without the URL's query; the error chain names the host.
                    message: error_chain(&e),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        self.metrics
            .azure_requests
            .with_label_values(&[label, status.as_str()])
            .inc();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        // ARM and Graph: {"error": {"code", "message"}}; Entra: {"error", "error_description"}.
        let (code, message) = match &body["error"] {
            Value::Object(error) => (
                error
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Value::String(code) => (
                code.as_str(),
                body["error_description"].as_str().unwrap_or_default(),
            ),
            _ => ("", text.get(..200).unwrap_or(&text)),
        };
        Err(AzureError {
            service,
            status: Some(status.as_u16()),
            code: code.to_owned(),
            message: message.to_owned(),
            retry_after,
        })
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The operator's HTTP client for Azure: the system's CAs, or `ca_file`'s.
pub fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("azlog-operator/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "CA file {} holds no usable certificate: {e}",
                path.display()
            )
        })?;
        builder = builder.tls_certs_only(certificates);
    }
    builder
        .build()
        .map_err(|e| format!("failed to set up the HTTP client for Azure: {e}"))
}
