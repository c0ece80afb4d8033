//! SubscriptionAuthorizations against a real kube-apiserver and the fake Azure service: grants
//! made, changed and removed; every listed subscription; an admin without rights; a principal not
//! replicated yet; bad input; a created principal that a LogSource then collects with; the
//! operator killed in the middle. Assertions read the fake's own state: what Azure would hold.
// Runs Linux processes (Kubernetes, the operator); the Windows build has its own smoke test.
#![cfg(unix)]

use std::path::PathBuf;
use std::time::Duration;

use azlog_e2e::fake_azure::{Api as AzureApi, FakeAzure, Fault, RoleAssignment};
use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster, OperatorProcess};
use azlog_operator::authorization::role;
use azlog_operator::crd::LogSource;
use azlog_operator::crd::subscription_authorization::{
    GrantState, SubscriptionAuthorization, SubscriptionAuthorizationStatus,
};
use azlog_test_support::collector::workspace_binary;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ADMIN: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const ADMIN_SECRET: &str = "admin-s3cret";
const COLLECTOR: &str = "cccccccc-0000-4000-8000-000000000002";
const S1: &str = "11111111-0000-4000-8000-000000000001";
const S2: &str = "11111111-0000-4000-8000-000000000002";
const S3: &str = "11111111-0000-4000-8000-000000000003";

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    check: impl FnMut() -> F,
) -> T {
    azlog_test_support::wait::eventually(what, WAIT, check).await
}

/// A control plane, the fake Azure with an administrator (User Access Administrator on S1–S3,
/// Graph rights to create applications and grant app roles) and the collector's identity, the
/// admin's Secret, and the operator pointed at the fake.
struct Setup {
    dir: tempfile::TempDir,
    cluster: Cluster,
    azure: FakeAzure,
    ca: PathBuf,
    operator: Option<OperatorProcess>,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::start(dir.path()).await;
        let azure = FakeAzure::start().await.expect("fake Azure");
        azure.add_client_secret(TENANT, ADMIN, ADMIN_SECRET);
        azure.add_client_secret(TENANT, COLLECTOR, "collector-secret");
        for sub in [S1, S2, S3] {
            azure.add_subscription(sub, TENANT);
            azure.grant_role(ADMIN, sub, role::USER_ACCESS_ADMINISTRATOR.id);
        }
        azure.grant_graph_permission(ADMIN, "Application.ReadWrite.All");
        azure.grant_graph_permission(ADMIN, "AppRoleAssignment.ReadWrite.All");
        let ca = dir.path().join("azure-ca.pem");
        std::fs::write(&ca, azure.ca_pem()).expect("ca");
        let secrets: Api<Secret> = Api::namespaced(cluster.client(ADMIN_TOKEN), NS);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "azure-admin", "labels": {"azlog.io/admin-credential": "true"}},
            "stringData": {"clientSecret": ADMIN_SECRET},
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("admin Secret");
        let mut setup = Setup {
            dir,
            cluster,
            azure,
            ca,
            operator: None,
        };
        setup.start_operator().await;
        setup
    }

    async fn start_operator(&mut self) {
        self.start_operator_with(&[], &[]).await;
    }

    /// The operator with `more` flags and `env` added.
    async fn start_operator_with(&mut self, more: &[&str], env: &[(&str, &str)]) {
        let token = self.cluster.operator_token().await;
        let url = self.azure.url().to_owned();
        let ca = self.ca.display().to_string();
        let args = [
            "--collector-image",
            "azlog/collector:test",
            "--log-level",
            "azlog_operator=debug,info",
            "--azure-authority-host",
            &url,
            "--azure-resource-manager",
            &url,
            "--azure-graph",
            &url,
            "--azure-ca-file",
            &ca,
        ];
        let args: Vec<&str> = args.iter().chain(more).copied().collect();
        self.operator = Some(OperatorProcess::start_with_env(
            &self.cluster,
            &workspace_binary("azlog-operator"),
            self.dir.path(),
            &token,
            &args,
            env,
        ));
    }

    fn kill_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.kill();
        }
    }

    fn api(&self) -> Api<SubscriptionAuthorization> {
        Api::namespaced(self.cluster.client(ADMIN_TOKEN), NS)
    }

    async fn create(&self, name: &str, spec: Value) {
        let mut spec = spec;
        let fields = spec.as_object_mut().expect("spec object");
        fields.entry("tenantId").or_insert(TENANT.into());
        fields.entry("adminCredentialRef").or_insert(json!({"clientId": ADMIN, "clientSecret": {"name": "azure-admin", "key": "clientSecret"}}));
        let object: SubscriptionAuthorization = serde_json::from_value(json!({
            "apiVersion": "azlog.io/v1alpha1", "kind": "SubscriptionAuthorization",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("a SubscriptionAuthorization");
        self.api()
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
    }

    async fn patch(&self, name: &str, spec: Value) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("patch");
    }

    async fn status(&self, name: &str) -> Option<SubscriptionAuthorizationStatus> {
        self.api().get(name).await.ok()?.status
    }

    /// Waits until Ready has `reason`; answers the status.
    async fn reason(&self, name: &str, reason: &str) -> SubscriptionAuthorizationStatus {
        let last = std::sync::Mutex::new(None);
        let found = azlog_test_support::wait::eventually_or_none(WAIT, || async {
            let status = self.status(name).await?;
            *last.lock().expect("lock") = Some(status.clone());
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.reason == reason).then_some(status.clone())
        })
        .await;
        found.unwrap_or_else(|| {
            let log = std::fs::read_to_string(self.dir.path().join("operator.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{name} did not report {reason} within {WAIT:?}; its status: {:#?}\noperator log (newest first):\n{}",
                last.lock().expect("lock"),
                tail.join("\n")
            )
        })
    }

    async fn deleted(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        eventually(&format!("{name} is gone"), || async {
            self.api().get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// The role assignments the principal holds, by subscription, sorted.
    fn assignments_of(&self, principal: &str) -> Vec<RoleAssignment> {
        let mut list: Vec<RoleAssignment> = self
            .azure
            .role_assignments()
            .into_iter()
            .filter(|a| a.principal_id == principal)
            .collect();
        list.sort_by(|a, b| a.subscription.cmp(&b.subscription));
        list
    }

    fn subscriptions_of(&self, principal: &str) -> Vec<String> {
        self.assignments_of(principal)
            .into_iter()
            .map(|a| a.subscription)
            .collect()
    }
}

fn ready_message(status: &SubscriptionAuthorizationStatus) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn collector_principal() -> Value {
    json!({"clientId": COLLECTOR})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_follow_the_spec_and_deletion_removes_exactly_what_was_made() {
    let s = Setup::new().await;
    let principal = s.azure.object_id(COLLECTOR).expect("object id");
    // Someone already gave the collector Reader on S3, outside azlog.
    s.azure.grant_reader(COLLECTOR, S3);
    let theirs = s.assignments_of(&principal);
    s.create(
        "grant",
        json!({"subscriptionIds": [S1], "principal": collector_principal()}),
    )
    .await;
    let status = s.reason("grant", "Granted").await;
    assert_eq!(status.principal_id.as_deref(), Some(principal.as_str()));
    assert_eq!(s.subscriptions_of(&principal), [S1, S3]);
    let ours = &s.assignments_of(&principal)[0];
    assert_eq!(ours.role, role::READER.id);
    assert_eq!(
        status.subscriptions[0].grant.id.as_deref(),
        Some(ours.id().as_str())
    );

    // A resync of a converged resource reads Azure and writes nothing: no status, no grant.
    let operator = s.operator.as_ref().expect("operator");
    let status_writes = || async {
        operator
            .metric(
                "azlog_operator_api_writes_total",
                &["kind=\"SubscriptionAuthorizationStatus\""],
            )
            .await
    };
    let writes_before = status_writes().await;
    let calls_before = s.azure.served().len();
    let assignments_before = s.azure.role_assignments();
    s.api()
        .patch(
            "grant",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/resync": "1"}}})),
        )
        .await
        .expect("touch");
    let resync_calls = eventually("the resync has read Azure", || async {
        let n = s.azure.served().len() - calls_before;
        (n > 0).then_some(n)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resync_calls = resync_calls.max(s.azure.served().len() - calls_before);
    assert!(
        resync_calls <= 4,
        "a resync costs a token per audience, a principal lookup and a GET per subscription: {resync_calls} calls"
    );
    assert_eq!(
        status_writes().await,
        writes_before,
        "no status write at steady state"
    );
    assert_eq!(
        s.azure.role_assignments(),
        assignments_before,
        "nothing is written to Azure"
    );

    // Add S2 and S3, drop S1, ask for the audit log permission.
    s.patch(
        "grant",
        json!({"subscriptionIds": [S2, S3], "auditLogs": true}),
    )
    .await;
    let status = eventually(
        "S1 is revoked, S2 granted, S3 found pre-existing",
        || async {
            let status = s.status("grant").await?;
            let states: Vec<(String, GrantState)> = status
                .subscriptions
                .iter()
                .map(|g| (g.subscription_id.clone(), g.grant.state))
                .collect();
            (states
                == [
                    (S2.to_owned(), GrantState::Granted),
                    (S3.to_owned(), GrantState::PreExisting),
                ]
                && status
                    .audit_logs
                    .as_ref()
                    .is_some_and(|g| g.state == GrantState::Granted))
            .then_some(status)
        },
    )
    .await;
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{status:?}"
    );
    assert_eq!(
        s.subscriptions_of(&principal),
        [S2, S3],
        "one assignment each, the pre-existing one not doubled"
    );
    let audit = s.azure.app_role_assignments();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].principal_id, principal);
    assert_eq!(
        audit[0].app_role_id,
        azlog_operator::authorization::graph::AUDIT_LOG_READ_ALL
    );

    // Deletion removes the S2 assignment and the app role, and leaves the S3 one it did not make.
    s.deleted("grant").await;
    assert_eq!(
        s.assignments_of(&principal),
        theirs,
        "only what the resource made is gone"
    );
    assert!(s.azure.app_role_assignments().is_empty());
    let events = s.cluster.kubectl(&[
        "get",
        "events",
        "-n",
        NS,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("Granted") && events.contains("Removed"),
        "Events tell the story: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_subscription_is_granted_and_retain_keeps_the_grants() {
    let s = Setup::new().await;
    let principal = s.azure.object_id(COLLECTOR).expect("object id");
    s.create("all", json!({"principal": {"objectId": principal}, "role": "Security Reader", "deletionPolicy": "Retain"})).await;
    let status = s.reason("all", "Granted").await;
    assert_eq!(status.subscriptions.len(), 3, "{status:?}");
    assert_eq!(s.subscriptions_of(&principal), [S1, S2, S3]);
    assert!(
        s.assignments_of(&principal)
            .iter()
            .all(|a| a.role == role::SECURITY_READER.id)
    );
    s.deleted("all").await;
    assert_eq!(
        s.subscriptions_of(&principal),
        [S1, S2, S3],
        "Retain keeps them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_while_azure_is_unreachable_waits_and_says_why() {
    let s = Setup::new().await;
    let principal = s.azure.object_id(COLLECTOR).expect("object id");
    s.create(
        "outage",
        json!({"subscriptionIds": [S1], "principal": {"objectId": principal}}),
    )
    .await;
    s.reason("outage", "Granted").await;
    // ARM fails the removal once.
    s.azure.inject(
        AzureApi::Authorization,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    s.api()
        .delete("outage", &DeleteParams::default())
        .await
        .expect("delete");
    let status = s.reason("outage", "DeletionBlocked").await;
    let message = ready_message(&status);
    assert!(
        message.contains("removing the grants failed")
            && message.contains("deletionPolicy: Retain"),
        "{message}"
    );
    assert_eq!(
        s.subscriptions_of(&principal),
        [S1],
        "nothing removed yet, nothing orphaned"
    );
    // The outage is over: the next attempt removes the grant and lets the resource go.
    eventually("outage is gone", || async {
        s.api()
            .get_opt("outage")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(s.subscriptions_of(&principal).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_without_rights_is_told_what_is_missing_without_a_retry_storm() {
    let s = Setup::new().await;
    // The admin holds only Reader on a fourth subscription, and cannot grant app roles.
    let s4 = "11111111-0000-4000-8000-000000000004";
    s.azure.add_subscription(s4, TENANT);
    s.azure.grant_reader(ADMIN, s4);
    s.create(
        "weak",
        json!({"subscriptionIds": [s4], "principal": collector_principal()}),
    )
    .await;
    let status = s.reason("weak", "MissingPermission").await;
    assert!(
        status.missing_permissions.iter().any(|m| m
            .contains("Microsoft.Authorization/roleAssignments/write")
            && m.contains(s4)
            && m.contains("User Access Administrator")),
        "{:?}",
        status.missing_permissions
    );
    assert!(
        s.azure
            .role_assignments()
            .iter()
            .all(|a| a.subscription != s4
                || a.principal_id != s.azure.object_id(COLLECTOR).unwrap_or_default())
    );
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled.status, "True", "a human must act: {stalled:?}");
    let before = s.azure.calls(AzureApi::Authorization);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = s.azure.calls(AzureApi::Authorization);
    assert_eq!(after, before, "no retry while nothing changes");
    // No PUT was even tried: the preflight read the permissions.
    assert!(
        s.azure
            .served()
            .iter()
            .all(|r| r.api != AzureApi::Authorization || r.status != 403)
    );

    // No admin consent to grant app roles: the roles are granted, AuditLog.Read.All is named missing.
    s.azure
        .revoke_graph_permission(ADMIN, "AppRoleAssignment.ReadWrite.All");
    s.create(
        "no-consent",
        json!({"subscriptionIds": [S1], "auditLogs": true, "principal": collector_principal()}),
    )
    .await;
    let status = s.reason("no-consent", "MissingPermission").await;
    assert_eq!(status.subscriptions[0].grant.state, GrantState::Granted);
    assert!(
        status
            .missing_permissions
            .iter()
            .any(|m| m.contains("AppRoleAssignment.ReadWrite.All")
                && m.contains("AuditLog.Read.All")),
        "{:?}",
        status.missing_permissions
    );
    assert_eq!(status.audit_logs.map(|g| g.state), Some(GrantState::Failed));
    assert!(s.azure.app_role_assignments().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_not_yet_replicated_is_granted_once_it_appears() {
    let s = Setup::new().await;
    s.azure.hide_from_arm(COLLECTOR);
    s.create(
        "new",
        json!({"subscriptionIds": [S1], "principal": collector_principal()}),
    )
    .await;
    let status = s.reason("new", "PrincipalNotReplicated").await;
    assert_eq!(status.subscriptions[0].grant.state, GrantState::Pending);
    assert!(
        status.subscriptions[0]
            .grant
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("replication")
    );
    s.azure.replicate(COLLECTOR);
    s.reason("new", "Granted").await;
    let principal = s.azure.object_id(COLLECTOR).expect("object id");
    assert_eq!(s.subscriptions_of(&principal), [S1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_condition_and_no_azure_call() {
    let s = Setup::new().await;
    s.create("typo", json!({"subscriptionIds": ["not-a-subscription"], "role": "Reeder", "principal": collector_principal()})).await;
    let status = s.reason("typo", "InvalidSpec").await;
    let message = ready_message(&status);
    assert!(
        message.contains("spec.subscriptionIds[0]: 'not-a-subscription' is not a GUID"),
        "{message}"
    );
    assert!(
        message.contains("spec.role: 'Reeder' is not a built-in role"),
        "{message}"
    );
    s.create("no-secret", json!({"subscriptionIds": [S1], "principal": collector_principal(),
        "adminCredentialRef": {"clientId": ADMIN, "clientSecret": {"name": "missing", "key": "clientSecret"}}})).await;
    let status = s.reason("no-secret", "AdminSecretNotFound").await;
    let message = ready_message(&status);
    assert!(
        message.contains("Secret missing") && message.contains("azlog.io/admin-credential=true"),
        "{message}"
    );
    assert!(
        s.azure.served().is_empty(),
        "no call reached Azure: {:?}",
        s.azure.served().len()
    );
    // Both can be deleted: nothing was made.
    s.deleted("typo").await;
    s.deleted("no-secret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_killed_mid_grant_leaves_no_duplicate_or_orphan() {
    let mut s = Setup::new().await;
    // Every Azure call is slow, so each kill lands in the middle of some step.
    for _ in 0..40 {
        s.azure.inject(
            AzureApi::Authorization,
            Fault::Delay(Duration::from_millis(700)),
        );
        s.azure.inject(
            AzureApi::Directory,
            Fault::Delay(Duration::from_millis(700)),
        );
    }
    s.create("crash", json!({"subscriptionIds": [S1, S2, S3], "auditLogs": true,
        "principal": {"create": {"displayName": "azlog collector", "federatedCredential": {"issuer": "https://oidc.example/cluster", "serviceAccount": "azlog-activity"}}}})).await;
    let mut killed_before_granted = 0;
    for kill_after in [1500, 2500, 3500, 2000] {
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        let granted = s.status("crash").await.is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        killed_before_granted += usize::from(!granted);
        s.kill_operator();
        s.start_operator().await;
    }
    assert!(
        killed_before_granted >= 3,
        "the kills came while granting ({killed_before_granted} of 4)"
    );
    let status = s.reason("crash", "Granted").await;
    let apps = s.azure.applications();
    assert_eq!(
        apps.len(),
        1,
        "one application, however often it was interrupted"
    );
    let created = status.application.expect("the created application");
    assert_eq!(Some(&apps[0]), created.client_id.as_ref());
    let created_client = created.client_id.unwrap_or_default();
    let principal = status.principal_id.expect("principal");
    assert_eq!(
        s.subscriptions_of(&principal),
        [S1, S2, S3],
        "one assignment per subscription"
    );
    assert_eq!(s.azure.app_role_assignments().len(), 1);
    assert_eq!(
        s.azure.federated_subjects(&created_client),
        ["system:serviceaccount:default:azlog-activity"]
    );
    // Killed again in the middle of removing it.
    for _ in 0..20 {
        s.azure.inject(
            AzureApi::Authorization,
            Fault::Delay(Duration::from_millis(700)),
        );
    }
    s.api()
        .delete("crash", &DeleteParams::default())
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill_operator();
    assert!(
        s.api().get_opt("crash").await.expect("get").is_some(),
        "the deletion was still under way"
    );
    s.start_operator().await;
    eventually("crash is gone", || async {
        s.api().get_opt("crash").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        s.azure
            .role_assignments()
            .iter()
            .all(|a| a.principal_id != principal),
        "no orphaned assignment"
    );
    assert!(s.azure.applications().is_empty(), "no orphaned application");
    assert!(s.azure.app_role_assignments().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_principal_collects_the_activity_log_through_a_log_source() {
    use azlog_e2e::host_collector::{PodOnHost, syslog_counter};
    let s = Setup::new().await;
    let sources: Api<LogSource> = Api::namespaced(s.cluster.client(ADMIN_TOKEN), NS);
    let deployments: Api<Deployment> = Api::namespaced(s.cluster.client(ADMIN_TOKEN), NS);
    // The LogSource comes first and waits: it names its authorization, which does not exist yet.
    let port = azlog_test_support::ports::free_port();
    let received = syslog_counter(port).await;
    let log_source = |client_id: &str| {
        azlog_e2e::log_source(
            "activity",
            json!({"activityLog": {"subscriptions": [S1]}, "authorizationRef": {"name": "collector"},
                   "credential": {"workloadIdentity": {"tenantId": TENANT, "clientId": client_id}},
                   "outputs": [{"syslog": {"address": format!("127.0.0.1:{port}"), "transport": "tcp", "framing": "newline"}}]}),
        )
    };
    sources
        .create(&PostParams::default(), &log_source(COLLECTOR))
        .await
        .expect("create");
    let authorized = eventually("the LogSource waits for its authorization", || async {
        let source = sources.get("activity").await.ok()?;
        source
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Authorized" && c.status == "False")
    })
    .await;
    assert_eq!(authorized.reason, "AuthorizationNotFound", "{authorized:?}");
    assert!(
        deployments
            .get_opt("azlog-activity")
            .await
            .expect("get")
            .is_none(),
        "no collector before it is authorized"
    );

    s.create("collector", json!({"subscriptionIds": [S1],
        "principal": {"create": {"displayName": "azlog collector", "federatedCredential": {"issuer": "https://kubernetes.default.svc", "serviceAccount": "azlog-activity"}}}})).await;
    let status = s.reason("collector", "Granted").await;
    let client_id = status
        .application
        .and_then(|a| a.client_id)
        .expect("the created application's client id");
    sources
        .patch("activity", &PatchParams::default(), &Patch::Merge(json!({"spec": {"credential": {"workloadIdentity": {"tenantId": TENANT, "clientId": client_id}}}})))
        .await
        .expect("point the LogSource at the created identity");
    eventually(
        "the collector Deployment appears once authorized",
        || async { deployments.get_opt("azlog-activity").await.ok()? },
    )
    .await;

    // The pod, run on the host: its ServiceAccount token for the Entra audience is what the
    // webhook would project; the fake checks its subject against the federated credential.
    let token = s
        .cluster
        .service_account_token_for(NS, "azlog-activity", "api://AzureADTokenExchange")
        .await;
    let token_file = s.dir.path().join("azure-token");
    std::fs::write(&token_file, token).expect("token");
    let now = chrono::Utc::now();
    for n in 0..20 {
        s.azure.push_activity(
            S1,
            activity(
                &format!("event-{n}"),
                now - chrono::TimeDelta::minutes(30) + chrono::TimeDelta::seconds(n),
            ),
        );
    }
    let (url, ca) = (s.azure.url().to_owned(), s.ca.display().to_string());
    let pod = PodOnHost::prepare(&s.cluster, s.dir.path(), "activity", |config| {
        config["azure"]["endpoints"] =
            json!({"authorityHost": url, "resourceManager": url, "graph": url});
        config["azure"]["caFile"] = ca.into();
        config["azure"]["credential"]["workloadIdentity"]["tokenFile"] =
            token_file.display().to_string().into();
        config["source"]["activityLog"]["startAt"] =
            (now - chrono::TimeDelta::hours(1)).to_rfc3339().into();
        config["pipeline"] = json!({"pollInterval": "1s"});
    })
    .await;
    let _collector = pod.run(&workspace_binary("azlog-collector"));
    eventually("the 20 Activity Log events reach the receiver", || async {
        (received.load(std::sync::atomic::Ordering::SeqCst) >= 20).then_some(())
    })
    .await;
}

fn activity(id: &str, time: chrono::DateTime<chrono::Utc>) -> Value {
    let at = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "eventDataId": id, "id": format!("/subscriptions/{S1}/events/{id}"), "eventTimestamp": at, "submissionTimestamp": at,
        "subscriptionId": S1, "tenantId": TENANT, "level": "Informational",
        "operationName": {"value": "Microsoft.Compute/virtualMachines/write", "localizedValue": "Create or Update Virtual Machine"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
        "caller": "alice@contoso.com", "resourceId": format!("/subscriptions/{S1}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_client_secret_is_kept_in_an_owned_secret_and_renewed_when_it_is_lost() {
    let s = Setup::new().await;
    s.create("with-secret", json!({"subscriptionIds": [S1],
        "principal": {"create": {"displayName": "azlog collector", "clientSecret": {"secretName": "azlog-credential", "validity": "90d"}}}})).await;
    let status = s.reason("with-secret", "Granted").await;
    let app = status.application.expect("the created application");
    let client_id = app.client_id.expect("client id");
    let first = app.client_secret.expect("the client secret's record");
    assert_eq!(first.secret_name, "azlog-credential");
    let expires: chrono::DateTime<chrono::Utc> = first.expires.parse().expect("an RFC 3339 expiry");
    let days = (expires - chrono::Utc::now()).num_days();
    assert!(
        (88..=90).contains(&days),
        "valid for the 90 days asked: {days}"
    );
    let secrets: Api<Secret> = Api::namespaced(s.cluster.client(ADMIN_TOKEN), NS);
    let secret = secrets.get("azlog-credential").await.expect("the Secret");
    let label = secret.labels().get("azlog.io/logsource-access");
    assert_eq!(label.map(String::as_str), Some("true"));
    assert!(
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "SubscriptionAuthorization" && o.controller == Some(true))
    );
    let value = |key: &str| {
        String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8")
    };
    assert_eq!(value("clientId"), client_id);
    assert_eq!(value("tenantId"), TENANT);
    assert_eq!(
        entra_status(&s, &client_id, &value("clientSecret")).await,
        200,
        "Entra accepts the secret"
    );

    // Lost: deleting the Secret makes the next reconcile create a new one and remove the old.
    let old_secret = value("clientSecret");
    secrets
        .delete("azlog-credential", &DeleteParams::default())
        .await
        .expect("delete");
    s.api()
        .patch(
            "with-secret",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/touch": "1"}}})),
        )
        .await
        .expect("touch");
    let renewed = eventually("a new client secret is recorded", || async {
        let secret = s.status("with-secret").await?.application?.client_secret?;
        (secret.key_id != first.key_id).then_some(secret)
    })
    .await;
    let secret = secrets
        .get("azlog-credential")
        .await
        .expect("the new Secret");
    let new_secret = String::from_utf8(
        secret.data.as_ref().expect("data")["clientSecret"]
            .0
            .clone(),
    )
    .expect("utf-8");
    assert_ne!(new_secret, old_secret);
    assert_eq!(entra_status(&s, &client_id, &new_secret).await, 200);
    assert_eq!(
        entra_status(&s, &client_id, &old_secret).await,
        401,
        "the old password is removed"
    );
    assert_ne!(renewed.key_id, first.key_id);

    s.deleted("with-secret").await;
    assert!(s.azure.applications().is_empty());
    eventually("the Secret goes with its owner", || async {
        secrets
            .get_opt("azlog-credential")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

/// What Entra ID answers a client-credentials sign-in with `secret`.
async fn entra_status(s: &Setup, client_id: &str, secret: &str) -> u16 {
    let http = azlog_operator::authorization::azure::http_client(Some(&s.ca)).expect("client");
    http.post(format!("{}/{TENANT}/oauth2/v2.0/token", s.azure.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_own_identity_grants_only_where_the_cluster_admin_allows() {
    let mut s = Setup::new().await;
    // The operator gets a workload identity that may assign roles on S1: no admin secret at all.
    let operator_client = "0be0a7e0-0000-4000-8000-00000000000f";
    s.azure.add_federated_identity(
        TENANT,
        operator_client,
        "system:serviceaccount:azlog-system:azlog-operator",
    );
    s.azure
        .grant_role(operator_client, S1, role::USER_ACCESS_ADMINISTRATOR.id);
    let token = s
        .cluster
        .service_account_token_for(
            "azlog-system",
            "azlog-operator",
            "api://AzureADTokenExchange",
        )
        .await;
    let token_file = s.dir.path().join("operator-azure-token");
    std::fs::write(&token_file, token).expect("token");
    let token_path = token_file.display().to_string();
    s.kill_operator();
    s.start_operator_with(
        &["--allow-operator-identity-namespace", NS],
        &[
            ("AZURE_CLIENT_ID", operator_client),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_FEDERATED_TOKEN_FILE", &token_path),
        ],
    )
    .await;
    // By object id: the operator's identity has no Graph permission to look a client id up.
    let principal = s.azure.object_id(COLLECTOR).expect("object id");
    s.create("as-operator", json!({"subscriptionIds": [S1], "principal": {"objectId": principal}, "adminCredentialRef": null})).await;
    s.reason("as-operator", "Granted").await;
    assert_eq!(s.subscriptions_of(&principal), [S1]);

    // Another namespace may not borrow the operator's identity.
    s.cluster.kubectl(&["create", "namespace", "team-b"]);
    let other: Api<SubscriptionAuthorization> =
        Api::namespaced(s.cluster.client(ADMIN_TOKEN), "team-b");
    let object: SubscriptionAuthorization = serde_json::from_value(json!({
        "apiVersion": "azlog.io/v1alpha1", "kind": "SubscriptionAuthorization", "metadata": {"name": "borrow"},
        "spec": {"tenantId": TENANT, "subscriptionIds": [S2], "principal": collector_principal()},
    }))
    .expect("object");
    other
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let refused = eventually("the borrowing is refused", || async {
        let status = other.get("borrow").await.ok()?.status?;
        let ready = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "PolicyRefused").then_some(ready.message)
    })
    .await;
    assert!(
        refused.contains("spec.adminCredentialRef is required")
            && refused.contains("policy.operatorIdentityNamespaces"),
        "{refused}"
    );
    assert_eq!(
        s.subscriptions_of(&principal),
        [S1],
        "nothing granted on S2"
    );
}
