//! A client secret for an application a SubscriptionAuthorization created, kept in a Secret of its
//! namespace (`create.clientSecret`). Every password on that application is this resource's, so
//! after a new one is written to the Secret the others are removed: a crash between creating a
//! password and writing it leaves at most one stray password, gone at the next renewal.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::{self, SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use reqwest::Method;
use serde_json::{Value, json};

use super::azure::AzureApi;
use super::grants::{Problem, SaveStatus};
use super::plan::{Plan, PrincipalPlan};
use crate::children::MANAGED_BY;
use crate::controller::FIELD_MANAGER;
use crate::crd::subscription_authorization::{
    CreatedSecret, SubscriptionAuthorization, SubscriptionAuthorizationStatus,
};
use crate::policy::SECRET_ACCESS_LABEL;

/// Makes sure the Secret holds a client secret Entra accepts and that has at least a quarter of
/// its validity left; answers what keeps it from that.
pub async fn ensure(
    api: &AzureApi<'_>,
    kube: &Client,
    resource: &SubscriptionAuthorization,
    plan: &Plan,
    status: &mut SubscriptionAuthorizationStatus,
    save: &dyn SaveStatus,
) -> Option<Problem> {
    let PrincipalPlan::Create(creation) = &plan.principal else {
        return None;
    };
    let (Some((secret_name, validity)), Some(app)) = (&creation.client_secret, &status.application)
    else {
        return None;
    };
    let (Some(client_id), Some(object_id)) = (app.client_id.clone(), app.object_id.clone()) else {
        return None;
    };
    let namespace = resource.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
    let uid = resource.uid().unwrap_or_default();
    let kube_problem = |e: kube::Error| Problem {
        reason: "SecretNotWritten",
        message: format!("Secret {secret_name}: {e}"),
        retry: Some(Duration::from_secs(30)),
        missing: None,
    };
    let existing = secrets.get_opt(secret_name).await.map_err(kube_problem);
    let existing = match existing {
        Ok(existing) => existing,
        Err(problem) => return Some(problem),
    };
    if let Some(found) = &existing
        && !found.owner_references().iter().any(|o| o.uid == uid)
    {
        return Some(Problem {
            reason: "SecretNameTaken",
            message: format!(
                "Secret {secret_name} exists and is not this resource's; choose another spec.principal.create.clientSecret.secretName, or delete that Secret"
            ),
            retry: None,
            missing: None,
        });
    }
    let fail = |e| Problem::from_azure(&e, "creating the client secret", None);
    let application = match api
        .graph(
            Method::GET,
            &format!("applications/{object_id}"),
            None,
            false,
        )
        .await
    {
        Ok(answer) => answer.body,
        Err(e) => return Some(fail(e)),
    };
    let passwords: Vec<(String, String)> = application["passwordCredentials"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["keyId"].as_str()?.to_owned(),
                p["endDateTime"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let recorded = app.client_secret.as_ref();
    let in_secret = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .is_some_and(|d| d.contains_key("clientSecret"));
    let fresh = recorded.is_some_and(|r| {
        r.secret_name == *secret_name
            && passwords.iter().any(|(key, _)| *key == r.key_id)
            && remaining(&r.expires).is_some_and(|left| left > *validity / 4)
    });
    if fresh && in_secret {
        return None;
    }
    let end = Timestamp::now()
        .checked_add(SignedDuration::from_secs(validity.as_secs() as i64))
        .unwrap_or_else(|_| Timestamp::now())
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now());
    let body = json!({"passwordCredential": {
        "displayName": format!("azlog {namespace}/{}", resource.name_any()),
        "endDateTime": end.to_string(),
    }});
    let added = match api
        .graph(
            Method::POST,
            &format!("applications/{object_id}/addPassword"),
            Some(&body),
            false,
        )
        .await
    {
        Ok(answer) => answer.body,
        Err(e) => return Some(fail(e)),
    };
    let (Some(key_id), Some(secret_text)) = (added["keyId"].as_str(), added["secretText"].as_str())
    else {
        return Some(Problem {
            reason: "AzureRefused",
            message: "Microsoft Graph answered addPassword without keyId or secretText".into(),
            retry: Some(Duration::from_secs(60)),
            missing: None,
        });
    };
    let secret = owned_secret(
        resource,
        secret_name,
        &plan.tenant_id,
        &client_id,
        secret_text,
    );
    if let Err(e) = secrets
        .patch(
            secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
    {
        return Some(kube_problem(e));
    }
    let expires = added["endDateTime"]
        .as_str()
        .map_or_else(|| end.to_string(), str::to_owned);
    if let Some(app) = status.application.as_mut() {
        app.client_secret = Some(CreatedSecret {
            secret_name: secret_name.clone(),
            key_id: key_id.to_owned(),
            expires,
        });
    }
    if let Err(problem) = super::grants::save_now(save, status).await {
        return Some(problem);
    }
    // The Secret holds the new one: every other password of the application goes.
    for (old, _) in passwords.iter().filter(|(k, _)| k != key_id) {
        let removed = api
            .graph(
                Method::POST,
                &format!("applications/{object_id}/removePassword"),
                Some(&json!({"keyId": old})),
                false,
            )
            .await;
        if let Err(e) = removed {
            return Some(Problem::from_azure(
                &e,
                "removing the previous client secret",
                None,
            ));
        }
    }
    None
}

/// How long until `expires` (RFC 3339); None when unreadable or past.
fn remaining(expires: &str) -> Option<Duration> {
    let at: Timestamp = expires.parse().ok()?;
    Duration::try_from(at.duration_since(Timestamp::now())).ok()
}

/// The Secret a LogSource's `credential.clientSecret` names, owned by the resource so that it goes
/// with it, and labelled so that LogSources may mount it.
fn owned_secret(
    resource: &SubscriptionAuthorization,
    name: &str,
    tenant_id: &str,
    client_id: &str,
    secret: &str,
) -> Value {
    let owner = OwnerReference {
        api_version: SubscriptionAuthorization::api_version(&()).into_owned(),
        kind: SubscriptionAuthorization::kind(&()).into_owned(),
        name: resource.name_any(),
        uid: resource.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let data: BTreeMap<String, ByteString> = [
        ("tenantId", tenant_id),
        ("clientId", client_id),
        ("clientSecret", secret),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: resource.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (SECRET_ACCESS_LABEL.to_owned(), "true".to_owned()),
            ])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(secret).unwrap_or_default();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    value
}
