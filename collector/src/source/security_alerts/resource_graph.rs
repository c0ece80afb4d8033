//! Azure Resource Graph, asked for every Defender for Cloud alert's id and status across the
//! subscriptions, a thousand rows a request. The rows are small, so a poll of an unchanged tenant
//! costs one request instead of every alert of every subscription, page by page.

use serde::Deserialize;
use serde_json::json;

use crate::azure::client::Api;
use crate::azure::{ApiError, Audience, AzureClient};

const API_VERSION: &str = "2022-10-01";

pub const API: Api = Api {
    name: "resourceGraph",
    audience: Audience::ResourceManager,
    forbidden_hint: "give the collector's identity the Reader (or Security Reader) role on the subscriptions (a SubscriptionAuthorization grants it)",
};

/// Each alert's id, status and time generated. The properties' case has differed between Resource
/// Graph and the alerts API over the years: either is read.
const QUERY: &str = "securityresources | where type =~ 'microsoft.security/locations/alerts' | project id, status = tostring(coalesce(properties.status, properties.Status)), generated = tostring(coalesce(properties.timeGeneratedUtc, properties.TimeGeneratedUtc))";

/// The most rows Resource Graph answers a request.
const PAGE_ROWS: u32 = 1000;

#[derive(Debug, Deserialize)]
struct Answer {
    data: Vec<Row>,
    #[serde(rename = "$skipToken")]
    skip_token: Option<String>,
}

/// An alert's id, status and time generated, as Resource Graph holds them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Row {
    pub id: String,
    #[serde(default)]
    pub status: String,
    /// Empty when the alert has none.
    #[serde(default)]
    pub generated: String,
}

/// Every alert's id and status in `subscriptions`.
pub async fn alert_statuses(
    client: &AzureClient,
    subscriptions: &[String],
) -> Result<Vec<Row>, ApiError> {
    let url = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version={API_VERSION}",
        client.endpoints().resource_manager
    );
    let mut rows = Vec::new();
    let mut skip_token: Option<String> = None;
    loop {
        let mut options = json!({"$top": PAGE_ROWS, "resultFormat": "objectArray"});
        if let Some(token) = &skip_token {
            options["$skipToken"] = json!(token);
        }
        let body = json!({"subscriptions": subscriptions, "query": QUERY, "options": options});
        let token = client.bearer(API).await?;
        let request = client
            .http()
            .post(&url)
            .bearer_auth(token.secret())
            .header("accept", "application/json")
            .json(&body);
        let answer = client.execute(request, API).await?;
        if answer.status != 200 {
            return Err(client.failure(answer, API));
        }
        let page: Answer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Malformed {
                api: API.name,
                url: url.split('?').next().unwrap_or_default().to_owned(),
                reason: e.to_string(),
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            })?;
        rows.extend(page.data);
        match page.skip_token {
            Some(token) => skip_token = Some(token),
            None => return Ok(rows),
        }
    }
}
