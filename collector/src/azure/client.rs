//! The HTTP client for ARM and Graph listings: bearer tokens, `nextLink` paging, throttling and the
//! error bodies both services send.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::RawJson;
use tokio::time::Instant;

use super::credential::Tokens;
use super::{Audience, Endpoints};
use crate::config::{AzureConfig, TlsConfig};
use crate::metrics::Metrics;

/// A page larger than this is refused rather than buffered: memory stays bounded whatever Azure sends.
/// ARM and Graph pages are at most a few MiB.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

/// ARM reports the subscription's remaining read budget on every answer; below this the client
/// slows down instead of running into 429s that would also throttle other tools on the subscription.
const LOW_READ_BUDGET: i64 = 100;
const LOW_BUDGET_PAUSE: Duration = Duration::from_secs(10);

/// A whole answer, read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub retry_after: Option<Duration>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<RawJson>,
    pub next_link: Option<String>,
}

/// Why a request failed. Every variant is retried by the pipeline; the message says what to fix
/// when retrying alone will not.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Credential(String),
    #[error(
        "{api} refused the token (401 {code}: {message}); azlog fetches a new token and retries"
    )]
    Unauthorized {
        api: &'static str,
        code: String,
        message: String,
    },
    #[error("{api} denied access (403 {code}: {message}); {hint}")]
    Forbidden {
        api: &'static str,
        code: String,
        message: String,
        hint: &'static str,
    },
    #[error("{api} is throttling requests (HTTP {status})")]
    Throttled {
        api: &'static str,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{api} failed with HTTP {status} ({code}: {message})")]
    Status {
        api: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("failed to reach {api}: {message}")]
    Transport { api: &'static str, message: String },
    #[error(
        "{api} sent a nextLink to {url}, outside {expected}; azlog sends its token only to the \
         configured endpoint and does not follow it (the listing starts over)"
    )]
    ForeignLink {
        api: &'static str,
        /// Redacted.
        url: String,
        expected: String,
    },
    #[error("{api} sent a page that is not a listing ({reason})")]
    Malformed {
        api: &'static str,
        url: String,
        reason: String,
        body: String,
    },
}

impl ApiError {
    pub fn category(&self) -> &'static str {
        match self {
            ApiError::Credential(_) => "credential",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Throttled { .. } => "throttled",
            ApiError::Status { status, .. } if *status >= 500 => "server_error",
            ApiError::Status { .. } => "request_error",
            ApiError::Transport { .. } => "transport",
            ApiError::Malformed { .. } => "malformed_page",
            ApiError::ForeignLink { .. } => "foreign_link",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What an API call is about, for metrics, messages and the 403 advice.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub name: &'static str,
    pub audience: Audience,
    /// What to do when access is denied.
    pub forbidden_hint: &'static str,
}

#[derive(Debug)]
pub struct AzureClient {
    http: reqwest::Client,
    /// None when the source authenticates otherwise (a storage account key or SAS).
    tokens: Option<Tokens>,
    endpoints: Endpoints,
    metrics: Arc<Metrics>,
    not_before: Mutex<Option<Instant>>,
    /// The size of the last answer, to size the next one's buffer when it comes chunked, without
    /// a Content-Length (as table pages do): growing by doubling copied each page several times.
    last_body_len: std::sync::atomic::AtomicUsize,
}

/// Builds the HTTP client: rustls with ring, the configured CA or the system roots.
pub fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config(Some(&TlsConfig {
        ca_file: ca_file.map(std::path::Path::to_path_buf),
        ..TlsConfig::default()
    }))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(Arc::unwrap_or_clone(tls))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("azlog/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("failed to set up the HTTP client: {e}"))
}

impl AzureClient {
    /// A client for `config`'s cloud; without a config, for the public cloud with no credential.
    pub fn new(config: Option<&AzureConfig>, metrics: Arc<Metrics>) -> Result<AzureClient, String> {
        let default = AzureConfig::default();
        let config = config.unwrap_or(&default);
        let endpoints = Endpoints::resolve(config);
        let http = http_client(config.ca_file.as_deref())?;
        let tokens = match &config.credential {
            Some(credential) => Some(Tokens::new(
                credential.clone(),
                endpoints.clone(),
                http.clone(),
            )?),
            None => None,
        };
        Ok(AzureClient {
            http,
            tokens,
            endpoints,
            metrics,
            not_before: Mutex::new(None),
            last_body_len: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Fetches one page of a listing: `{"value": [...], "nextLink" | "@odata.nextLink": ...}`.
    /// `url` must be on the API's configured endpoint (same scheme, host and port): a `nextLink`
    /// elsewhere is refused before any token is fetched for it.
    pub async fn get_page(&self, url: &str, api: Api) -> Result<Page, ApiError> {
        let endpoint = match api.audience {
            Audience::ResourceManager => &self.endpoints.resource_manager,
            Audience::Graph => &self.endpoints.graph,
            // Storage and Event Hubs are read through their own clients, never listed here:
            // nothing matches.
            Audience::Storage => &self.endpoints.storage_suffix,
            Audience::EventHubs => &self.endpoints.event_hubs_suffix,
        };
        if !same_origin(url, endpoint) {
            return Err(ApiError::ForeignLink {
                api: api.name,
                url: crate::redact::redact(url).into_owned(),
                expected: endpoint.clone(),
            });
        }
        let token = self.bearer(api).await?;
        let request = self
            .http
            .get(url)
            .bearer_auth(token.secret())
            .header("accept", "application/json");
        let answer = self.execute(request, api).await?;
        if answer.status != 200 {
            return Err(self.failure(answer, api));
        }
        parse_page(&answer.body).map_err(|reason| ApiError::Malformed {
            api: api.name,
            url: crate::redact::redact(url).into_owned(),
            reason,
            body: String::from_utf8_lossy(&answer.body).into_owned(),
        })
    }

    /// A bearer token for `api`'s audience from the configured credential.
    pub async fn bearer(&self, api: Api) -> Result<azure_core::credentials::Secret, ApiError> {
        let tokens = self.tokens.as_ref().ok_or_else(|| {
            ApiError::Credential(format!(
                "{} needs an Entra ID token but the azure block names no credential",
                api.name
            ))
        })?;
        tokens
            .bearer(api.audience)
            .await
            .map_err(ApiError::Credential)
    }

    /// Drops the cached tokens: a service refused one before it expired (revoked, or the identity
    /// changed), so the next request fetches a new one.
    pub fn renew_token(&self) {
        if let Some(tokens) = &self.tokens {
            tokens.renew();
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request, paced by the read budget, and reads the whole answer (up to
    /// [`MAX_PAGE_BYTES`]); counts it in the request metrics.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        api: Api,
    ) -> Result<Answer, ApiError> {
        self.pace().await;
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.count(api, "error");
                return Err(ApiError::Transport {
                    api: api.name,
                    message: describe(&e),
                });
            }
        };
        let status = response.status().as_u16();
        self.count(api, &status.to_string());
        if let Some(remaining) =
            header_number(&response, "x-ms-ratelimit-remaining-subscription-reads")
        {
            self.metrics
                .azure_remaining_reads
                .with_label_values(&[api.name])
                .set(remaining);
            if remaining < LOW_READ_BUDGET {
                tracing::warn!(api = api.name, remaining, pause = ?LOW_BUDGET_PAUSE, "the subscription's ARM read budget is nearly spent; slowing down");
                self.hold_off(LOW_BUDGET_PAUSE);
            }
        }
        let retry_after = retry_after(&response);
        let headers = response.headers().clone();
        let hint = self
            .last_body_len
            .load(std::sync::atomic::Ordering::Relaxed);
        let body = read_body(&mut response, hint)
            .await
            .map_err(|message| ApiError::Transport {
                api: api.name,
                message,
            })?;
        self.last_body_len
            .store(body.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(Answer {
            status,
            headers,
            body,
            retry_after,
        })
    }

    /// What a non-success answer means. Storage says "busy" with 503 and 500 OperationTimedOut
    /// instead of 429, so those count as throttling too.
    pub fn failure(&self, answer: Answer, api: Api) -> ApiError {
        let (code, message) = error_body(&answer.body);
        let status = answer.status;
        let busy = matches!(code.as_str(), "ServerBusy" | "OperationTimedOut");
        match status {
            429 => self.throttled(api, status, answer.retry_after),
            503 if answer.retry_after.is_some() || busy => {
                self.throttled(api, status, answer.retry_after)
            }
            500 if busy => self.throttled(api, status, answer.retry_after),
            401 => {
                self.renew_token();
                ApiError::Unauthorized {
                    api: api.name,
                    code,
                    message,
                }
            }
            403 => ApiError::Forbidden {
                api: api.name,
                code,
                message,
                hint: api.forbidden_hint,
            },
            _ => ApiError::Status {
                api: api.name,
                status,
                code,
                message,
            },
        }
    }

    fn count(&self, api: Api, status: &str) {
        self.metrics
            .azure_requests
            .with_label_values(&[api.name, status])
            .inc();
    }

    fn throttled(&self, api: Api, status: u16, retry_after: Option<Duration>) -> ApiError {
        self.metrics
            .azure_throttled
            .with_label_values(&[api.name])
            .inc();
        ApiError::Throttled {
            api: api.name,
            status,
            retry_after,
        }
    }

    fn hold_off(&self, pause: Duration) {
        if let Ok(mut not_before) = self.not_before.lock() {
            *not_before = Some(Instant::now() + pause);
        }
    }

    async fn pace(&self) {
        let until = self.not_before.lock().ok().and_then(|mut n| n.take());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Whether `url` has the scheme, host and port of `endpoint` (an `https://host[:port]` base).
fn same_origin(url: &str, endpoint: &str) -> bool {
    let (Ok(url), Ok(endpoint)) = (reqwest::Url::parse(url), reqwest::Url::parse(endpoint)) else {
        return false;
    };
    url.scheme() == endpoint.scheme()
        && url.host_str().map(str::to_ascii_lowercase)
            == endpoint.host_str().map(str::to_ascii_lowercase)
        && url.port_or_known_default() == endpoint.port_or_known_default()
}

fn header_number(response: &reqwest::Response, name: &str) -> Option<i64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Retry-After in seconds (what ARM and Graph send) or as an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(3600)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        wait.to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

async fn read_body(response: &mut reqwest::Response, hint: usize) -> Result<Vec<u8>, String> {
    // Sized from Content-Length when Azure sends one, else like the last answer (with room to
    // spare), so a page is not copied as the buffer grows.
    let expected = response
        .content_length()
        .map_or(hint + hint / 8, |n| n as usize)
        .min(MAX_PAGE_BYTES);
    let mut body = Vec::with_capacity(expected);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer broke off: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(format!(
                "the answer is larger than {} MiB; azlog does not buffer pages that large",
                MAX_PAGE_BYTES >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct Listing<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "nextLink", alias = "@odata.nextLink", default)]
    next_link: Option<String>,
}

fn parse_page(body: &[u8]) -> Result<Page, String> {
    let listing: Listing = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(Page {
        records: listing.value.into_iter().map(RawJson::from).collect(),
        next_link: listing.next_link.filter(|link| !link.is_empty()),
    })
}

/// ARM and Graph answer errors as `{"error": {"code", "message"}}`; Table storage as
/// `{"odata.error": {"code", "message": {"lang", "value"}}}`.
fn error_body(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(alias = "odata.error")]
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: Message,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Message {
        Text(String),
        Localized { value: String },
    }
    impl Default for Message {
        fn default() -> Self {
            Message::Text(String::new())
        }
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => {
            let message = match error.message {
                Message::Text(text) | Message::Localized { value: text } => text,
            };
            // Storage appends request ids and a timestamp on new lines; the first line says it.
            let message = message.lines().next().unwrap_or_default().to_owned();
            (error.code, message)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(300).collect();
            ("Unknown".into(), text)
        }
    }
}

/// reqwest's error with its causes ("error sending request: … : connection refused"). reqwest
/// quotes the URL, so a SAS in it is redacted.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::redact::redact(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_followed_only_on_the_endpoints_scheme_host_and_port() {
        let arm = "https://management.azure.com";
        assert!(same_origin(
            "https://management.azure.com/subscriptions/s/providers/x?$skiptoken=1",
            arm
        ));
        assert!(same_origin("https://MANAGEMENT.azure.com:443/x", arm));
        for foreign in [
            "http://management.azure.com/x",
            "https://management.azure.com:8443/x",
            "https://management.azure.com.evil.example/x",
            "https://evil.example/?https://management.azure.com",
            "https://user@evil.example/x",
            "not a url",
        ] {
            assert!(!same_origin(foreign, arm), "{foreign}");
        }
        assert!(same_origin(
            "https://127.0.0.1:8443/v1.0/auditLogs/directoryAudits?$skiptoken=x",
            "https://127.0.0.1:8443"
        ));
    }

    #[test]
    fn arm_and_graph_pages_are_read_alike() {
        let arm = parse_page(br#"{"value":[{"a":1},{"b":2}],"nextLink":"https://x/next"}"#)
            .expect("arm page");
        assert_eq!(arm.records.len(), 2);
        assert_eq!(arm.next_link.as_deref(), Some("https://x/next"));
        let graph = parse_page(
            br#"{"@odata.context":"c","value":[{"id":"1"}],"@odata.nextLink":"https://g/next"}"#,
        )
        .expect("graph page");
        assert_eq!(graph.records[0].get(), r#"{"id":"1"}"#);
        assert_eq!(graph.next_link.as_deref(), Some("https://g/next"));
        let last = parse_page(br#"{"value":[],"nextLink":null}"#).expect("last page");
        assert!(last.next_link.is_none());
    }

    #[test]
    fn a_page_without_a_value_array_is_malformed() {
        assert!(parse_page(br#"{"error":"nope"}"#).is_err());
        assert!(parse_page(br#"{"value":{"a":1}}"#).is_err());
        assert!(parse_page(br#"{"value":[{"a":1},"#).is_err());
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let (code, message) =
            error_body(br#"{"error":{"code":"AuthorizationFailed","message":"no access"}}"#);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("AuthorizationFailed", "no access")
        );
        let (code, message) = error_body(
            br#"{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist.\nRequestId:1"}}}"#,
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("TableNotFound", "The table specified does not exist.")
        );
        let (code, message) = error_body(b"<html>bad gateway</html>");
        assert_eq!(code, "Unknown");
        assert!(message.contains("bad gateway"));
    }
}
