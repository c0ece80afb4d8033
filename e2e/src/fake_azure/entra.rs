//! The Entra ID v2 token endpoint: `POST /{tenant}/oauth2/v2.0/token`, client credentials with a
//! client secret or a client assertion (workload identity federation), error bodies as Entra sends them.

use std::collections::HashMap;
use std::time::Instant;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::Shared;
use super::state::{Api, Audience, Token};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience Kubernetes service account tokens carry for Entra workload identity federation.
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": "00000000-0000-0000-0000-000000000000",
        "correlation_id": "00000000-0000-0000-0000-000000000000",
    });
    (status, axum::Json(body)).into_response()
}

/// Resources the fake issues tokens for, per cloud.
fn audience_of(scope: &str) -> Option<Audience> {
    let resource = scope.strip_suffix("/.default")?.trim_end_matches('/');
    match resource {
        "https://management.azure.com"
        | "https://management.core.windows.net"
        | "https://management.usgovcloudapi.net"
        | "https://management.chinacloudapi.cn" => Some(Audience::Arm),
        "https://graph.microsoft.com"
        | "https://graph.microsoft.us"
        | "https://microsoftgraph.chinacloudapi.cn" => Some(Audience::Graph),
        "https://storage.azure.com" => Some(Audience::Storage),
        "https://eventhubs.azure.net" => Some(Audience::EventHubs),
        _ => None,
    }
}

/// The `sub` and `aud` of a JWT's payload. The fake cannot check the signature (it does not hold the
/// cluster's service account signing keys), but it checks everything Entra matches a federated
/// credential on.
fn assertion_claims(assertion: &str) -> Option<(String, String)> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let aud = match &claims["aud"] {
        serde_json::Value::String(a) => a.clone(),
        serde_json::Value::Array(list) => list.first()?.as_str()?.to_owned(),
        _ => return None,
    };
    Some((claims["sub"].as_str()?.to_owned(), aud))
}

fn storage_jwt(
    tenant: &str,
    client_id: &str,
    object_id: &str,
    lifetime: std::time::Duration,
) -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now, "exp": now + lifetime.as_secs() as i64,
        "appid": client_id, "oid": object_id, "tid": tenant, "sub": object_id,
    });
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

pub async fn token(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(response) = super::fault(&shared, Api::Token).await {
        return super::record(&shared, Api::Token, "", response);
    }
    let response = issue(&shared, &tenant, &form);
    super::record(&shared, Api::Token, "", response)
}

fn issue(shared: &Shared, tenant: &str, form: &HashMap<String, String>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = field("client_id");
    let Some(audience) = audience_of(field("scope")) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {} was not found in the tenant named {tenant}.",
                field("scope")
            ),
        );
    };
    let mut state = super::lock(shared);
    let Some(identity) = state
        .identities
        .get(client_id)
        .filter(|i| i.tenant_id == tenant)
        .cloned()
    else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    let (secrets, subjects) = state.credentials(client_id);
    let authenticated = if let Some(secret) = form.get("client_secret") {
        if !secrets.contains(secret) {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
        true
    } else if field("client_assertion_type") == ASSERTION_TYPE {
        match assertion_claims(field("client_assertion")) {
            Some((sub, aud)) if subjects.contains(&sub) && aud == EXCHANGE_AUDIENCE => true,
            Some((sub, aud)) => {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700213,
                    &format!(
                        "No matching federated identity record found for presented assertion subject '{sub}' (audience '{aud}')."
                    ),
                );
            }
            None => {
                return entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    50027,
                    "JWT token is invalid or malformed.",
                );
            }
        }
    } else {
        false
    };
    if !authenticated {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let lifetime = state.token_lifetime;
    let access_token = match audience {
        // Storage reads the token itself, so it gets a JWT with the claims Azure Storage checks
        // (unsigned: the emulator does not verify signatures).
        Audience::Storage => storage_jwt(tenant, client_id, &identity.object_id, lifetime),
        _ => state.next_id("fake-token."),
    };
    state.tokens.insert(
        access_token.clone(),
        Token {
            client_id: client_id.to_owned(),
            audience,
            expires: Instant::now() + lifetime,
        },
    );
    let seconds = lifetime.as_secs();
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": seconds,
        "ext_expires_in": seconds,
        "access_token": access_token,
    }))
    .into_response()
}
