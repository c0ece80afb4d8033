//! What every storage source names: an account, an endpoint, and a key or SAS.

use std::path::Path;

use super::Context;
use crate::path::{At, Problems};

/// The storage account, endpoint and key or SAS file of a storage source.
#[derive(Debug)]
pub(crate) struct StorageFields<'a> {
    pub account: &'a str,
    pub endpoint: Option<&'a str>,
    pub key_file: Option<&'a Path>,
    pub sas_file: Option<&'a Path>,
}

impl StorageFields<'_> {
    pub fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        let account = self.account;
        let valid_account = (3..=24).contains(&account.len())
            && account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_account {
            problems.add(
                at,
                "account",
                format!(
                    "{account:?} is not a storage account name (3 to 24 lowercase letters and digits)"
                ),
            );
        }
        if let Some(endpoint) = self.endpoint {
            match url::Url::parse(endpoint) {
                Ok(url) if url.scheme() == "https" => {}
                Ok(url)
                    if url.scheme() == "http"
                        && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
                Ok(_) => problems.add(
                    at,
                    "endpoint",
                    format!(
                        "{endpoint:?} must be https:// (plain http only for an emulator on loopback)"
                    ),
                ),
                Err(e) => problems.add(
                    at,
                    "endpoint",
                    format!("{endpoint:?} is not a URL: {e}"),
                ),
            }
        }
        match (self.key_file, self.sas_file) {
            (Some(_), Some(_)) => problems.add(
                at,
                "sasTokenFile",
                "set accountKeyFile or sasTokenFile, not both",
            ),
            (None, None) if !context.has_credential => problems.add(
                at,
                "accountKeyFile",
                "set accountKeyFile or sasTokenFile, or an azure.credential with a Storage Data Reader role on the account",
            ),
            _ => {}
        }
        for (field, file) in [
            ("accountKeyFile", self.key_file),
            ("sasTokenFile", self.sas_file),
        ] {
            if let Some(file) = file
                && context.files.missing(file)
            {
                problems.add(
                    at,
                    field,
                    format!(
                        "{} does not exist; mount the Secret holding it there",
                        file.display()
                    ),
                );
            }
        }
    }
}
