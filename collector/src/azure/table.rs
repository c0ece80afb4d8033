//! Azure Table storage queries: `$filter` with continuation tokens, signed with the account key
//! (SharedKeyLite), a SAS token, or an Entra ID token.

use std::sync::Arc;

use super::client::Api;
use super::encode_query;
use super::storage::{self, Service, StorageAuth};
use super::{ApiError, AzureClient};

const API: Api = storage::api(
    "tableStorage",
    "check the account key or SAS token (it needs read and list permission and must not have expired), or give the identity Storage Table Data Reader on the account",
);

/// Where the next page of a query starts (the `x-ms-continuation-*` headers; opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    partition: String,
    row: Option<String>,
}

#[derive(Debug)]
pub struct TableClient {
    service: Service,
}

impl TableClient {
    pub fn new(
        client: Arc<AzureClient>,
        endpoint: &str,
        account: &str,
        auth: StorageAuth,
    ) -> TableClient {
        TableClient {
            service: Service::new(client, endpoint, account, auth),
        }
    }

    /// One page of `table` rows matching `filter` (all rows when empty), in (PartitionKey, RowKey)
    /// order, still unparsed, and where the next page starts, if there is one. The next request
    /// can go out before this page is parsed.
    pub async fn query(
        &self,
        table: &str,
        filter: &str,
        top: usize,
        continuation: Option<&Continuation>,
    ) -> Result<(TablePage, Option<Continuation>), ApiError> {
        let mut url = format!("{}/{table}()?$top={top}", self.service.endpoint);
        if !filter.is_empty() {
            url.push_str("&$filter=");
            url.push_str(&encode_query(filter));
        }
        if let Some(c) = continuation {
            url.push_str(&format!("&NextPartitionKey={}", encode_query(&c.partition)));
            if let Some(row) = &c.row {
                url.push_str(&format!("&NextRowKey={}", encode_query(row)));
            }
        }
        if let Some(sas) = self.service.sas() {
            url.push('&');
            url.push_str(sas);
        }
        let date = storage::now_header();
        let request = self
            .service
            .http()
            .get(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", "2019-02-02")
            .header("accept", "application/json;odata=minimalmetadata")
            .header("dataserviceversion", "3.0;NetFx")
            .header("maxdataserviceversion", "3.0;NetFx");
        // Table SharedKeyLite signs the date and the canonical resource.
        let answer = self
            .service
            .send(
                request,
                &url,
                "SharedKeyLite",
                |resource| format!("{date}\n{resource}"),
                API,
                &[200],
            )
            .await?;
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let continuation =
            header("x-ms-continuation-nextpartitionkey").map(|partition| Continuation {
                partition,
                row: header("x-ms-continuation-nextrowkey"),
            });
        let page = TablePage {
            url: url.split('?').next().unwrap_or_default().to_owned(),
            body: answer.body,
        };
        Ok((page, continuation))
    }
}

/// A page of rows as the table service sent it.
#[derive(Debug)]
pub struct TablePage {
    /// Without its query, which may hold a SAS token.
    url: String,
    body: Vec<u8>,
}

impl TablePage {
    /// What `parse` makes of the page's bytes; a page it cannot read is a malformed answer.
    pub fn parse<T>(self, parse: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, ApiError> {
        parse(&self.body).map_err(|reason| ApiError::Malformed {
            api: API.name,
            url: self.url,
            reason,
            body: String::from_utf8_lossy(&self.body).into_owned(),
        })
    }
}
