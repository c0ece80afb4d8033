//! A SubscriptionAuthorization's spec checked and resolved into what to do in Azure, before any
//! call: malformed GUIDs, an unknown role name or a principal given twice are refused with the
//! field and what to write instead.

use std::time::Duration;

use azlog_config::Cloud;
use azlog_config::text::is_guid;

use super::role;
use crate::crd::subscription_authorization::{
    AdminCredentialRef, DeletionPolicy, SubscriptionAuthorization,
};

/// The audience Entra expects in a Kubernetes token exchanged for an Entra token.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// What the spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tenant_id: String,
    /// None: every subscription the admin credential can list.
    pub subscriptions: Option<Vec<String>>,
    pub principal: PrincipalPlan,
    /// The role definition's GUID, lower case.
    pub role: String,
    pub audit_logs: bool,
    /// None: the operator's own identity.
    pub admin: Option<AdminCredentialRef>,
    pub deletion: DeletionPolicy,
    pub cloud: Cloud,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalPlan {
    ClientId(String),
    ObjectId(String),
    Create(Creation),
}

/// An application to create, keyed by a `uniqueName` derived from the resource's uid, so a retry
/// after a crash finds the application instead of making a second one.
#[derive(Debug, Clone, PartialEq)]
pub struct Creation {
    pub display_name: String,
    pub unique_name: String,
    /// The federated credential's name, issuer and subject.
    pub federated: Option<(String, String, String)>,
    /// The Secret to keep a client secret in, and how long each is valid.
    pub client_secret: Option<(String, std::time::Duration)>,
}

/// The application `uniqueName` of resource `uid`.
pub fn unique_name(uid: &str) -> String {
    format!("azlog-{uid}")
}

/// Checks the spec; on failure answers every problem, each with its field.
pub fn plan(resource: &SubscriptionAuthorization) -> Result<Plan, Vec<String>> {
    let spec = &resource.spec;
    let mut problems = Vec::new();
    let mut guid = |field: &str, value: &str, what: &str| {
        if !is_guid(value.trim()) {
            problems.push(format!(
                "{field}: '{value}' is not a GUID; write the {what} as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ));
        }
    };
    guid("spec.tenantId", &spec.tenant_id, "directory (tenant) id");
    for (i, id) in spec.subscription_ids.iter().enumerate() {
        guid(&format!("spec.subscriptionIds[{i}]"), id, "subscription id");
    }
    if let Some(admin) = &spec.admin_credential_ref {
        guid(
            "spec.adminCredentialRef.clientId",
            &admin.client_id,
            "administrator's application (client) id",
        );
    }
    let p = &spec.principal;
    let principal = match (&p.client_id, &p.object_id, &p.create) {
        (Some(id), None, None) => {
            guid("spec.principal.clientId", id, "application (client) id");
            Some(PrincipalPlan::ClientId(id.trim().to_ascii_lowercase()))
        }
        (None, Some(id), None) => {
            guid(
                "spec.principal.objectId",
                id,
                "service principal's object id",
            );
            Some(PrincipalPlan::ObjectId(id.trim().to_ascii_lowercase()))
        }
        (None, None, Some(create)) => {
            if create.display_name.trim().is_empty() {
                problems.push("spec.principal.create.displayName: must not be empty".to_owned());
            }
            let namespace = resource.metadata.namespace.clone().unwrap_or_default();
            let federated = match &create.federated_credential {
                Some(f) => {
                    if !f.issuer.starts_with("https://") {
                        problems.push(format!("spec.principal.create.federatedCredential.issuer: '{}' is not an https URL; use the cluster's OIDC issuer URL", f.issuer));
                    }
                    if f.service_account.trim().is_empty() {
                        problems.push("spec.principal.create.federatedCredential.serviceAccount: must not be empty; a LogSource's collector runs as azlog-<LogSource name>".to_owned());
                    }
                    let subject = format!(
                        "system:serviceaccount:{namespace}:{}",
                        f.service_account.trim()
                    );
                    let name = format!("azlog-{namespace}-{}", f.service_account.trim());
                    Some((
                        name.chars().take(120).collect(),
                        f.issuer.trim().to_owned(),
                        subject,
                    ))
                }
                None => None,
            };
            let client_secret = create.client_secret.as_ref().and_then(|c| {
                let validity = c.validity.as_deref().unwrap_or("180d");
                let name_ok = is_dns_label(&c.secret_name);
                if !name_ok {
                    problems.push(format!("spec.principal.create.clientSecret.secretName: '{}' is not a valid Secret name (lower-case letters, digits and '-')", c.secret_name));
                }
                match azlog_config::text::parse_duration(validity) {
                    Ok(d) if (Duration::from_secs(86_400)..=Duration::from_secs(730 * 86_400)).contains(&d) => {
                        name_ok.then(|| (c.secret_name.clone(), d))
                    }
                    Ok(_) => {
                        problems.push(format!("spec.principal.create.clientSecret.validity: {validity} is outside 1d to 730d, what Entra ID accepts"));
                        None
                    }
                    Err(e) => {
                        problems.push(format!("spec.principal.create.clientSecret.validity: {e}"));
                        None
                    }
                }
            });
            if create.federated_credential.is_none() && create.client_secret.is_none() {
                problems.push("spec.principal.create: set federatedCredential (recommended: the collector's ServiceAccount token signs in, no secret exists) or clientSecret".to_owned());
            }
            Some(PrincipalPlan::Create(Creation {
                display_name: create.display_name.trim().to_owned(),
                unique_name: unique_name(resource.metadata.uid.as_deref().unwrap_or_default()),
                federated,
                client_secret,
            }))
        }
        _ => {
            problems
                .push("spec.principal: set exactly one of clientId, objectId or create".to_owned());
            None
        }
    };
    let role = match spec.role.as_deref().map(str::trim) {
        None | Some("") => Some(role::READER.id.to_owned()),
        Some(id) if is_guid(id) => Some(id.to_ascii_lowercase()),
        Some(name) => match role::built_in(name) {
            Some(found) => Some(found.id.to_owned()),
            None => {
                let known: Vec<&str> = role::BUILT_IN.iter().map(|r| r.name).collect();
                problems.push(format!(
                    "spec.role: '{name}' is not a built-in role the operator knows ({}); name any other role by its role definition id (a GUID)",
                    known.join(", ")
                ));
                None
            }
        },
    };
    if let Some(admin) = &spec.admin_credential_ref
        && (admin.client_secret.name.trim().is_empty() || admin.client_secret.key.trim().is_empty())
    {
        problems.push("spec.adminCredentialRef.clientSecret: name and key are required".to_owned());
    }
    match (principal, role) {
        (Some(principal), Some(role)) if problems.is_empty() => Ok(Plan {
            tenant_id: spec.tenant_id.trim().to_ascii_lowercase(),
            subscriptions: (!spec.subscription_ids.is_empty()).then(|| {
                let mut ids: Vec<String> = spec
                    .subscription_ids
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            }),
            principal,
            role,
            audit_logs: spec.audit_logs.unwrap_or(false),
            admin: spec.admin_credential_ref.clone(),
            deletion: spec.deletion_policy.unwrap_or_default(),
            cloud: spec.cloud.unwrap_or_default(),
        }),
        _ => Err(problems),
    }
}

/// Whether `name` is a valid Secret name (a DNS subdomain; a label is what people write).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
}

/// The name of the role assignment of `role` to `principal` on `subscription`: a GUID derived
/// from the three, so a retry PUTs the same assignment instead of a second one, and deletion
/// finds exactly the assignments this resource made.
pub fn assignment_name(subscription: &str, principal: &str, role: &str) -> String {
    let key = format!(
        "azlog/{}/{}/{}",
        subscription.to_ascii_lowercase(),
        principal.to_ascii_lowercase(),
        role.to_ascii_lowercase()
    );
    let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    // Shaped as an RFC 4122 name-based GUID (version 5 bits, variant bits), as ARM expects.
    let hash = (hash & !(0xf << 76) | (0x5 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{hash:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::log_source::SecretKeyRef;
    use crate::crd::subscription_authorization::{
        CreatePrincipal, Principal, SubscriptionAuthorizationSpec,
    };

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const SUB: &str = "11111111-2222-3333-4444-555555555555";

    fn resource(spec: SubscriptionAuthorizationSpec) -> SubscriptionAuthorization {
        let mut r = SubscriptionAuthorization::new("grant", spec);
        r.metadata.namespace = Some("siem".into());
        r.metadata.uid = Some("0b5c2f0e-1111-4222-8333-444455556666".into());
        r
    }

    fn valid() -> SubscriptionAuthorizationSpec {
        SubscriptionAuthorizationSpec {
            tenant_id: TENANT.into(),
            subscription_ids: vec![SUB.into(), SUB.to_uppercase()],
            principal: Principal {
                client_id: Some("c44b4083-3bb0-49c1-b47d-974e53cbdf3c".into()),
                ..Principal::default()
            },
            admin_credential_ref: Some(AdminCredentialRef {
                client_id: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into(),
                client_secret: SecretKeyRef {
                    name: "admin".into(),
                    key: "secret".into(),
                },
            }),
            ..SubscriptionAuthorizationSpec::default()
        }
    }

    #[test]
    fn a_valid_spec_plans_reader_on_each_subscription_once() {
        let plan = plan(&resource(valid())).expect("valid");
        assert_eq!(plan.subscriptions, Some(vec![SUB.to_owned()]));
        assert_eq!(plan.role, role::READER.id);
        assert_eq!(plan.deletion, DeletionPolicy::Delete);
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let mut spec = valid();
        spec.tenant_id = "contoso".into();
        spec.subscription_ids = vec!["not-a-guid".into()];
        spec.role = Some("Reeder".into());
        spec.principal.object_id = Some("x".into());
        let problems = plan(&resource(spec)).expect_err("invalid");
        let text = problems.join("\n");
        assert!(
            text.contains("spec.tenantId: 'contoso' is not a GUID"),
            "{text}"
        );
        assert!(
            text.contains("spec.subscriptionIds[0]: 'not-a-guid'"),
            "{text}"
        );
        assert!(
            text.contains("spec.role: 'Reeder' is not a built-in role"),
            "{text}"
        );
        assert!(text.contains("spec.principal: set exactly one"), "{text}");
    }

    #[test]
    fn creating_a_principal_needs_a_way_to_sign_in() {
        let mut spec = valid();
        spec.principal = Principal {
            create: Some(CreatePrincipal {
                display_name: "azlog".into(),
                ..CreatePrincipal::default()
            }),
            ..Principal::default()
        };
        let problems = plan(&resource(spec)).expect_err("no credential");
        assert!(
            problems[0].starts_with("spec.principal.create: set federatedCredential"),
            "{problems:?}"
        );
    }

    #[test]
    fn assignment_names_are_stable_guids_that_differ_by_each_part() {
        let a = assignment_name(SUB, "p", role::READER.id);
        assert_eq!(
            a,
            assignment_name(&SUB.to_uppercase(), "P", role::READER.id)
        );
        assert!(is_guid(&a), "{a}");
        assert_eq!(&a[14..15], "5");
        assert_ne!(a, assignment_name(SUB, "q", role::READER.id));
        assert_ne!(a, assignment_name(SUB, "p", role::SECURITY_READER.id));
    }
}
