//! What the storage sources share: how a request proves it may read the account (account key,
//! SAS token or Entra ID token) and the endpoint of an account's service.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use std::sync::Arc;

use super::client::{Answer, Api};
use super::{ApiError, Audience, AzureClient};

/// How a request proves it may read the account.
pub enum StorageAuth {
    /// The account key, decoded.
    Key(ring::hmac::Key),
    /// A SAS token's query string, without the leading `?`.
    Sas(String),
    /// An Entra ID token from the azure block's credential.
    Token,
}

impl std::fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the token itself.
        f.write_str(match self {
            StorageAuth::Key(_) => "Key",
            StorageAuth::Sas(_) => "Sas",
            StorageAuth::Token => "Token",
        })
    }
}

impl StorageAuth {
    /// From the files a config names: the account key, else a SAS token, else the credential.
    pub fn from_files(
        key_file: Option<&std::path::Path>,
        sas_file: Option<&std::path::Path>,
    ) -> Result<StorageAuth, String> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("failed to read the {what} from {}: {e}", path.display()))
        };
        match (key_file, sas_file) {
            (Some(key), _) => StorageAuth::key(&read(key, "account key")?),
            (None, Some(sas)) => Ok(StorageAuth::sas(&read(sas, "SAS token")?)),
            (None, None) => Ok(StorageAuth::Token),
        }
    }

    pub fn key(base64_key: &str) -> Result<StorageAuth, String> {
        let bytes = STANDARD
            .decode(base64_key.trim())
            .map_err(|e| format!("the account key is not base64 ({e}); copy key1 or key2 from the storage account's Access keys"))?;
        Ok(StorageAuth::Key(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &bytes,
        )))
    }

    pub fn sas(token: &str) -> StorageAuth {
        StorageAuth::Sas(token.trim().trim_start_matches('?').to_owned())
    }
}

/// One storage service of an account (its table or blob endpoint), with how to authenticate to it.
#[derive(Debug)]
pub struct Service {
    client: Arc<AzureClient>,
    /// `https://<account>.<service>.core.windows.net` or an emulator's `http://host:port/<account>`.
    pub endpoint: String,
    account: String,
    auth: StorageAuth,
}

impl Service {
    pub fn new(
        client: Arc<AzureClient>,
        endpoint: &str,
        account: &str,
        auth: StorageAuth,
    ) -> Service {
        Service {
            client,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            account: account.to_owned(),
            auth,
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        self.client.http()
    }

    /// The SAS token's query string, to append to request URLs, when one authenticates.
    pub fn sas(&self) -> Option<&str> {
        match &self.auth {
            StorageAuth::Sas(sas) => Some(sas),
            _ => None,
        }
    }

    /// Authenticates `request` (to `url`) and sends it; any status but those in `ok` is a failure.
    /// With the key, the request carries its signature under `scheme` (`SharedKey`,
    /// `SharedKeyLite`) of what `string_to_sign` builds from the canonical resource; with a
    /// credential, a bearer token; a SAS is already in the URL.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        scheme: &str,
        string_to_sign: impl FnOnce(&str) -> String,
        api: Api,
        ok: &[u16],
    ) -> Result<Answer, ApiError> {
        let request = match &self.auth {
            StorageAuth::Key(key) => {
                let path = reqwest::Url::parse(url)
                    .map(|u| u.path().to_owned())
                    .map_err(|e| ApiError::Transport {
                        api: api.name,
                        message: format!("{} is not a URL: {e}", crate::redact::redact(url)),
                    })?;
                let account = &self.account;
                let signed = string_to_sign(&format!("/{account}{path}"));
                let signature = STANDARD.encode(ring::hmac::sign(key, signed.as_bytes()));
                request.header("authorization", format!("{scheme} {account}:{signature}"))
            }
            StorageAuth::Sas(_) => request,
            StorageAuth::Token => {
                let token = self.client.bearer(api).await?;
                request.bearer_auth(token.secret())
            }
        };
        let answer = self.client.execute(request, api).await?;
        if !ok.contains(&answer.status) {
            return Err(self.client.failure(answer, api));
        }
        Ok(answer)
    }
}

/// The storage API's identity for metrics and its 403 advice.
pub const fn api(name: &'static str, data_reader_role: &'static str) -> Api {
    Api {
        name,
        audience: Audience::Storage,
        forbidden_hint: data_reader_role,
    }
}

/// A storage account as a source's config names it.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub name: &'a str,
    /// The service's endpoint; None means `https://<name>.<service>.<cloud suffix>`.
    pub endpoint: Option<&'a str>,
    pub key_file: Option<&'a std::path::Path>,
    pub sas_file: Option<&'a std::path::Path>,
}

impl Account<'_> {
    /// The endpoint of `service` (`table`, `blob`) and how to authenticate to it.
    pub fn connect(&self, service: &str, suffix: &str) -> Result<(String, StorageAuth), String> {
        let endpoint = self
            .endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{}.{service}.{suffix}", self.name));
        Ok((
            endpoint,
            StorageAuth::from_files(self.key_file, self.sas_file)?,
        ))
    }
}

/// The current time as storage wants it in `x-ms-date`.
pub fn now_header() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}
