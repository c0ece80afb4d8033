//! The fake Azure service answers as Entra ID, ARM and Graph do: paging, auth errors, faults.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use azlog_e2e::fake_azure::{Api, FakeAzure, Fault};
use base64::Engine;
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
const SECRET: &str = "not-a-real-secret";
const SUB: &str = "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33";
const ARM: &str = "https://management.azure.com/.default";
const GRAPH: &str = "https://graph.microsoft.com/.default";

/// The collector's own HTTP client, trusting the fake's CA.
fn client(azure: &FakeAzure) -> reqwest::Client {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, azure.ca_pem()).expect("write ca");
    azlog_collector::azure::client::http_client(Some(&ca)).expect("client")
}

async fn setup() -> (FakeAzure, reqwest::Client) {
    let azure = FakeAzure::start().await.expect("fake azure");
    azure.add_client_secret(TENANT, CLIENT, SECRET);
    azure.add_subscription(SUB, TENANT);
    azure.grant_reader(CLIENT, SUB);
    let http = client(&azure);
    (azure, http)
}

async fn token_response(
    azure: &FakeAzure,
    http: &reqwest::Client,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", azure.url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

async fn token(azure: &FakeAzure, http: &reqwest::Client, scope: &str) -> String {
    let (status, body) = token_response(
        azure,
        http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

fn activity(id: usize, minute: usize) -> Value {
    json!({
        "eventDataId": format!("event-{id}"),
        "eventTimestamp": format!("2026-01-01T00:{:02}:{:02}Z", minute % 60, id % 60),
        "resourceGroupName": if id.is_multiple_of(2) { "prod" } else { "test" },
        "operationName": {"value": "Microsoft.Compute/virtualMachines/write"},
    })
}

fn activity_url(azure: &FakeAzure, filter: &str) -> String {
    format!(
        "{}/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter={filter}",
        azure.url()
    )
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    answer(request).await
}

/// Sends `request`; answers its status, headers and body (JSON, or the text as a string).
async fn answer(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn arm_reads_beyond_the_subscription_bucket_are_throttled_until_it_refills() {
    let (azure, http) = setup().await;
    let token = token(&azure, &http, ARM).await;
    let url = activity_url(&azure, "eventTimestamp ge '2026-01-01T00:00:00Z'");
    let (status, headers, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-ms-ratelimit-remaining-subscription-reads"],
        "249"
    );
    azure.set_remaining_reads(SUB, 0.0);
    let (status, headers, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["x-ms-ratelimit-remaining-subscription-reads"], "0");
    // 25 reads come back a second.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, headers, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 200);
    let remaining: i64 = headers["x-ms-ratelimit-remaining-subscription-reads"]
        .to_str()
        .expect("header")
        .parse()
        .expect("number");
    assert!((3..=5).contains(&remaining), "{remaining}");
}

#[tokio::test]
async fn the_activity_log_pages_with_next_link_newest_first() {
    let (azure, http) = setup().await;
    azure.set_page_size(200);
    for i in 0..450 {
        azure.push_activity(SUB, activity(i, i / 60));
    }
    let token = token(&azure, &http, ARM).await;
    let mut url = activity_url(
        &azure,
        "eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp le '2026-01-01T23:59:59Z'",
    );
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let (status, headers, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("x-ms-ratelimit-remaining-subscription-reads"));
        let times: Vec<&str> = body["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|e| e["eventTimestamp"].as_str().expect("time"))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first within a page"
        );
        for event in body["value"].as_array().expect("value") {
            seen.insert(event["eventDataId"].as_str().expect("id").to_owned());
        }
        pages += 1;
        match body["nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 450));
    assert_eq!(azure.calls(Api::ActivityLog), 3);
}

#[tokio::test]
async fn the_activity_log_filters_on_time_and_resource_group() {
    let (azure, http) = setup().await;
    for i in 0..120 {
        azure.push_activity(SUB, activity(i, i / 60));
    }
    let token = token(&azure, &http, ARM).await;
    let (status, _, body) = get(
        &http,
        &activity_url(
            &azure,
            "eventTimestamp ge '2026-01-01T00:01:00Z' and resourceGroupName eq 'prod'",
        ),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().expect("value").len(), 30);
    let (status, _, body) = get(
        &http,
        &activity_url(&azure, "resourceGroupName eq 'prod'"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400, "a time range is required: {body}");
}

#[tokio::test]
async fn auth_failures_carry_the_bodies_arm_and_entra_send() {
    let (azure, http) = setup().await;
    let (status, body) = token_response(
        &azure,
        &http,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", "wrong"),
            ("scope", ARM),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .starts_with("AADSTS7000215")
    );

    let url = activity_url(&azure, "eventTimestamp ge '2026-01-01T00:00:00Z'");
    let (status, headers, body) = get(&http, &url, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("AuthenticationFailed"))
    );
    assert!(headers.contains_key("www-authenticate"));

    let graph_token = token(&azure, &http, GRAPH).await;
    let (status, _, body) = get(&http, &url, Some(&graph_token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationTokenAudience"))
    );

    let arm_token = token(&azure, &http, ARM).await;
    azure.revoke_reader(CLIENT, SUB);
    let (status, _, body) = get(&http, &url, Some(&arm_token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains(CLIENT)
    );

    azure.grant_reader(CLIENT, SUB);
    azure.revoke_tokens();
    let (status, _, body) = get(&http, &url, Some(&arm_token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );

    let fresh = token(&azure, &http, ARM).await;
    let unknown = url.replace(SUB, "00000000-0000-0000-0000-000000000000");
    let (status, _, body) = get(&http, &unknown, Some(&fresh)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("SubscriptionNotFound"))
    );
    let (status, _, body) = get(
        &http,
        &url.replace("api-version=2015-04-01&", ""),
        Some(&fresh),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("MissingApiVersionParameter"))
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    let (azure, http) = setup().await;
    azure.set_token_lifetime(Duration::from_millis(200));
    let token = token(&azure, &http, ARM).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = get(
        &http,
        &activity_url(&azure, "eventTimestamp ge '2026-01-01T00:00:00Z'"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("ExpiredAuthenticationToken"))
    );
}

#[tokio::test]
async fn scripted_faults_apply_once_each_in_order() {
    let (azure, http) = setup().await;
    azure.push_activity(SUB, activity(1, 0));
    let token = token(&azure, &http, ARM).await;
    let url = activity_url(&azure, "eventTimestamp ge '2026-01-01T00:00:00Z'");
    azure.inject(
        Api::ActivityLog,
        Fault::Status {
            status: 429,
            retry_after: Some(7),
        },
    );
    azure.inject(
        Api::ActivityLog,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    azure.inject(Api::ActivityLog, Fault::Delay(Duration::from_millis(300)));
    azure.inject(Api::ActivityLog, Fault::Body("{'value': [".into()));

    let (status, headers, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("TooManyRequests"))
    );
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let (status, _, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 503);
    let started = Instant::now();
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        (status, body["value"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        Value::String("{'value': [".into()),
        "the malformed body is served as is"
    );
    let (status, _, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 200, "faults are used up");
    let statuses: Vec<u16> = azure
        .served()
        .iter()
        .filter(|s| s.api == Api::ActivityLog)
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, vec![429, 503, 200, 200, 200]);
}

#[tokio::test]
async fn page_boundaries_can_repeat_an_event() {
    let (azure, http) = setup().await;
    azure.set_page_size(2);
    azure.set_duplicate_page_boundaries(true);
    for i in 0..5 {
        azure.push_activity(SUB, activity(i, 0));
    }
    let token = token(&azure, &http, ARM).await;
    let mut url = activity_url(&azure, "eventTimestamp ge '2026-01-01T00:00:00Z'");
    let mut ids = Vec::new();
    loop {
        let (_, _, body) = get(&http, &url, Some(&token)).await;
        ids.extend(
            body["value"]
                .as_array()
                .expect("value")
                .iter()
                .map(|e| e["eventDataId"].as_str().expect("id").to_owned()),
        );
        match body["nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert!(ids.len() > 5, "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5);
}

#[tokio::test]
async fn graph_lists_directory_audits_with_filter_top_and_next_link() {
    let (azure, http) = setup().await;
    for day in 1..=5 {
        azure.push_directory_audit(json!({"id": format!("audit-{day}"), "activityDateTime": format!("2026-01-0{day}T10:00:00Z"), "category": "UserManagement"}));
    }
    let token = token(&azure, &http, GRAPH).await;
    let url = format!(
        "{}/v1.0/auditLogs/directoryAudits?$filter=activityDateTime ge 2026-01-02T00:00:00Z&$top=3",
        azure.url()
    );
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 403, "not a directory reader yet: {body}");
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    azure.grant_directory_reader(CLIENT);
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let first: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(first, vec!["audit-5", "audit-4", "audit-3"]);
    let next = body["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let (status, _, body) = get(&http, &next, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().expect("value").len(), 1);
    assert!(body.get("@odata.nextLink").is_none());
    let (status, _, body) = get(
        &http,
        &format!("{}/v1.0/auditLogs/directoryAudits?$top=5000", azure.url()),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Request_BadRequest"))
    );
}

fn unsigned_jwt(subject: &str, audience: &str) -> String {
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        enc(json!({"alg": "RS256", "typ": "JWT"})),
        enc(json!({"sub": subject, "aud": [audience], "iss": "https://kubernetes.default.svc"}))
    )
}

#[tokio::test]
async fn workload_identity_assertions_are_matched_on_subject_and_audience() {
    let azure = FakeAzure::start().await.expect("fake azure");
    let http = client(&azure);
    azure.add_federated_identity(TENANT, CLIENT, "system:serviceaccount:azlog:collector");
    let form = |assertion: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", CLIENT.to_owned()),
            ("scope", ARM.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion.to_owned()),
        ]
    };
    let good = form(&unsigned_jwt(
        "system:serviceaccount:azlog:collector",
        "api://AzureADTokenExchange",
    ));
    let pairs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token_response(&azure, &http, &pairs).await;
    assert_eq!(status, 200, "{body}");
    let bad = form(&unsigned_jwt(
        "system:serviceaccount:other:collector",
        "api://AzureADTokenExchange",
    ));
    let pairs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token_response(&azure, &http, &pairs).await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .starts_with("AADSTS700213"),
        "{body}"
    );
}

#[tokio::test]
async fn subscriptions_and_alerts_list_only_what_the_caller_may_read() {
    let (azure, http) = setup().await;
    azure.add_subscription("other-sub", TENANT);
    azure.push_alert(
        SUB,
        json!({"name": "alert-1", "properties": {"status": "Active"}}),
    );
    let token = token(&azure, &http, ARM).await;
    let (status, _, body) = get(
        &http,
        &format!("{}/subscriptions?api-version=2022-12-01", azure.url()),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|s| s["subscriptionId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![SUB]);
    let (status, _, body) = get(
        &http,
        &format!(
            "{}/subscriptions/{SUB}/providers/Microsoft.Security/alerts?api-version=2022-01-01",
            azure.url()
        ),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["name"], "alert-1");
}

/// One caller of the fake, with its token: requests to paths below the fake's URL.
struct Caller<'a> {
    azure: &'a FakeAzure,
    http: &'a reqwest::Client,
    token: String,
}

impl Caller<'_> {
    /// `method` on `path` with `body`; answers the status and body.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = self.request(method, path, body);
        let (status, _, body) = answer(request).await;
        (status, body)
    }

    /// A Graph upsert: PATCH with `Prefer: create-if-missing`.
    async fn upsert(&self, path: &str, body: Value) -> (u16, Value) {
        let request = self
            .request(reqwest::Method::PATCH, path, Some(body))
            .header("prefer", "create-if-missing");
        let (status, _, body) = answer(request).await;
        (status, body)
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.azure.url()))
            .bearer_auth(&self.token);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }
}

#[tokio::test]
async fn role_assignments_answer_as_arm_does() {
    use azlog_operator::authorization::role;
    use reqwest::Method;
    let (azure, http) = setup().await;
    let other = "0f0e0d0c-0000-4000-8000-000000000001";
    let other_object = azure.add_client_secret(TENANT, other, "x");
    let arm = Caller {
        azure: &azure,
        http: &http,
        token: token(&azure, &http, ARM).await,
    };
    let path = |name: &str| {
        format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
        )
    };
    let body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}", role::READER.id),
        "principalId": other_object, "principalType": "ServicePrincipal"}});
    let name = "5b8f7c1e-0000-5000-8000-000000000001";

    // A Reader may not assign roles, and its permissions say so.
    let (status, error) = arm.send(Method::PUT, &path(name), Some(body.clone())).await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["error"]["code"], "AuthorizationFailed");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Microsoft.Authorization/roleAssignments/write")
    );
    let permissions_path = format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    );
    let (status, permissions) = arm.send(Method::GET, &permissions_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(permissions["value"][0]["actions"], json!(["*/read"]));

    azure.grant_role(CLIENT, SUB, role::USER_ACCESS_ADMINISTRATOR.id);
    let (status, created) = arm.send(Method::PUT, &path(name), Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], name);
    assert_eq!(created["properties"]["principalId"], other_object.as_str());
    // The same PUT again is the same assignment; another name for it is a conflict.
    let (status, _) = arm.send(Method::PUT, &path(name), Some(body.clone())).await;
    assert_eq!(status, 201);
    let (status, conflict) = arm
        .send(
            Method::PUT,
            &path("5b8f7c1e-0000-5000-8000-000000000002"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("RoleAssignmentExists"))
    );
    assert_eq!(
        azure
            .role_assignments()
            .iter()
            .filter(|a| a.principal_id == other_object)
            .count(),
        1
    );

    // A principal Entra has not replicated to ARM yet.
    azure.hide_from_arm(other);
    let security_reader = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}", role::SECURITY_READER.id),
        "principalId": other_object}});
    let (status, missing) = arm
        .send(
            Method::PUT,
            &path("5b8f7c1e-0000-5000-8000-000000000003"),
            Some(security_reader),
        )
        .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (400, Some("PrincipalNotFound"))
    );

    let definitions_path = format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName%20eq%20'Security%20Reader'"
    );
    let (status, definitions) = arm.send(Method::GET, &definitions_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(definitions["value"][0]["name"], role::SECURITY_READER.id);
    let (status, _) = arm.send(Method::DELETE, &path(name), None).await;
    assert_eq!(status, 200);
    let (status, _) = arm.send(Method::DELETE, &path(name), None).await;
    assert_eq!(status, 204, "deleting what is not there");
    let (status, gone) = arm.send(Method::GET, &path(name), None).await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("RoleAssignmentNotFound"))
    );
}

#[tokio::test]
async fn graph_applications_and_app_roles_answer_as_graph_does() {
    use azlog_operator::authorization::graph::{AUDIT_LOG_READ_ALL, GRAPH_APP_ID};
    use reqwest::Method;
    let (azure, http) = setup().await;
    let graph_api = Caller {
        azure: &azure,
        http: &http,
        token: token(&azure, &http, GRAPH).await,
    };
    let app_path = "/v1.0/applications(uniqueName='azlog-test')";
    let (status, denied) = graph_api
        .upsert(app_path, json!({"displayName": "azlog"}))
        .await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );

    azure.grant_graph_permission(CLIENT, "Application.ReadWrite.All");
    azure.grant_graph_permission(CLIENT, "AppRoleAssignment.ReadWrite.All");
    let (status, app) = graph_api
        .upsert(app_path, json!({"displayName": "azlog"}))
        .await;
    assert_eq!(status, 201, "{app}");
    let (status, _) = graph_api
        .upsert(app_path, json!({"displayName": "azlog"}))
        .await;
    assert_eq!(
        status, 204,
        "the upsert of an existing application updates it"
    );
    let app_id = app["appId"].as_str().expect("appId");
    let app_object = format!(
        "/v1.0/applications/{}",
        app["id"].as_str().unwrap_or_default()
    );
    let (status, sp) = graph_api
        .upsert(
            &format!("/v1.0/servicePrincipals(appId='{app_id}')"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{sp}");
    let credential = json!({"name": "c", "issuer": "https://issuer", "subject": "system:serviceaccount:ns:sa", "audiences": ["api://AzureADTokenExchange"]});
    let fic = format!("{app_object}/federatedIdentityCredentials");
    let (status, _) = graph_api
        .send(Method::POST, &fic, Some(credential.clone()))
        .await;
    assert_eq!(status, 201);
    let (status, _) = graph_api.send(Method::POST, &fic, Some(credential)).await;
    assert_eq!(status, 409);
    assert_eq!(
        azure.federated_subjects(app_id),
        ["system:serviceaccount:ns:sa"]
    );

    let (_, graph) = graph_api
        .send(
            Method::GET,
            &format!("/v1.0/servicePrincipals(appId='{GRAPH_APP_ID}')"),
            None,
        )
        .await;
    let grant = json!({"principalId": sp["id"], "resourceId": graph["id"], "appRoleId": AUDIT_LOG_READ_ALL});
    let assign = format!(
        "/v1.0/servicePrincipals/{}/appRoleAssignedTo",
        graph["id"].as_str().unwrap_or_default()
    );
    let (status, assignment) = graph_api
        .send(Method::POST, &assign, Some(grant.clone()))
        .await;
    assert_eq!(status, 201, "{assignment}");
    let (status, again) = graph_api.send(Method::POST, &assign, Some(grant)).await;
    assert_eq!(
        (status, again["error"]["message"].as_str()),
        (
            400,
            Some("Permission being assigned already exists on the object")
        )
    );

    let (status, password) = graph_api
        .send(
            Method::POST,
            &format!("{app_object}/addPassword"),
            Some(json!({"passwordCredential": {"displayName": "azlog"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        password["secretText"]
            .as_str()
            .is_some_and(|s| s.len() > 10)
    );
    let (status, _) = graph_api.send(Method::DELETE, &app_object, None).await;
    assert_eq!(status, 204);
    assert!(azure.applications().is_empty());
    assert!(
        azure.app_role_assignments().is_empty(),
        "the service principal's grants went with it"
    );
}
