//! The Kubernetes objects that run a LogSource's collector: its config (ConfigMap), its identity
//! (ServiceAccount) and its pod (Deployment). Pure: built from the LogSource and its rendering.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection, WindowsSecurityContextOptions,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::crd::LogSource;
use crate::crd::log_source::FileVolume;
use crate::render::{
    CONFIG_DIR, CONFIG_FILE, FEDERATED_TOKEN_DIR, FEDERATED_TOKEN_FILE, FILES_DIR, Rendered,
    SECRETS_DIR, STATE_DIR, checkpoint_config_map, children_name, pod_path,
};

/// Label every child carries; the operator watches only objects with it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "azlog-operator");
/// On the children the collector writes (its checkpoint ConfigMap and its Lease): the operator
/// creates them and watches only their metadata, so a commit or a renewal neither fills its memory
/// nor wakes it.
pub const COLLECTOR_STATE: (&str, &str) = ("azlog.io/collector-state", "true");
/// Label naming the LogSource a child belongs to.
pub const LOG_SOURCE_LABEL: &str = "azlog.io/logsource";
/// Pod template annotation that changes whenever the collector's config does, rolling the pod.
pub const CONFIG_HASH: &str = "azlog.io/config-hash";
/// The UID the collector image runs as (distroless "nonroot").
const COLLECTOR_UID: i64 = 65532;
/// The least privileged account a HostProcess container can run as that may still write to the
/// event log (service logons may write to the Application log).
const WINDOWS_USER: &str = "NT AUTHORITY\\Local service";

/// The name shared by a LogSource's ConfigMap, ServiceAccount and Deployment.
pub fn child_name(source: &LogSource) -> String {
    children_name(source.metadata.name.as_deref().unwrap_or_default())
}

/// Everything applied for one LogSource.
#[derive(Debug, Clone)]
pub struct Children {
    pub config_map: ConfigMap,
    /// Created empty; the collector writes the checkpoint into it.
    pub checkpoint: ConfigMap,
    pub service_account: ServiceAccount,
    /// What the collector may do: read and update its checkpoint, report to the LogSource status.
    pub role: Role,
    pub role_binding: RoleBinding,
    /// The Lease the collector holds while it writes the checkpoint (one writer at a time).
    pub lease: Lease,
    pub deployment: Deployment,
}

/// Settings of the operator that shape every collector.
#[derive(Debug, Clone)]
pub struct CollectorDefaults {
    /// The collector image when a LogSource names none.
    pub image: String,
    /// The same for a collector that must run on Windows (a windowsEventLog output).
    pub windows_image: String,
    /// When the kubelet pulls the operator's collector images; None leaves it to Kubernetes.
    pub image_pull_policy: Option<String>,
}

pub fn build(source: &LogSource, rendered: &Rendered, defaults: &CollectorDefaults) -> Children {
    let name = child_name(source);
    let ls_name = source.metadata.name.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "azlog-collector".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), ls_name.clone()),
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (LOG_SOURCE_LABEL.to_owned(), ls_name.clone()),
    ]);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: source.metadata.namespace.clone(),
        labels: Some(labels.clone()),
        owner_references: source.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    };

    let config_map = ConfigMap {
        metadata: meta.clone(),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_owned(),
            rendered.config_yaml.clone(),
        )])),
        ..ConfigMap::default()
    };

    let mut sa_meta = meta.clone();
    if let Some(wi) = &rendered.workload_identity {
        // Read by Azure's workload identity webhook, where one is installed; the operator projects
        // the token itself, so the collector works without it too.
        sa_meta.annotations = Some(BTreeMap::from([
            (
                "azure.workload.identity/client-id".to_owned(),
                wi.client_id.clone(),
            ),
            (
                "azure.workload.identity/tenant-id".to_owned(),
                wi.tenant_id.clone(),
            ),
        ]));
    }
    let service_account = ServiceAccount {
        metadata: sa_meta,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let mut state_meta = meta.clone();
    state_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(COLLECTOR_STATE.0.to_owned(), COLLECTOR_STATE.1.to_owned());
    let checkpoint_name = checkpoint_config_map(&ls_name);
    let checkpoint = ConfigMap {
        metadata: ObjectMeta {
            name: Some(checkpoint_name.clone()),
            ..state_meta.clone()
        },
        ..ConfigMap::default()
    };
    // Collectors sharing an event hub name their Leases after its partitions and their pods, so
    // these cannot be listed by name; still only Leases, and only in this namespace.
    let sharing = (rendered.replicas > 1).then(|| PolicyRule {
        api_groups: Some(vec!["coordination.k8s.io".into()]),
        resources: Some(vec!["leases".into()]),
        verbs: ["get", "list", "create", "update", "delete"]
            .map(String::from)
            .to_vec(),
        ..PolicyRule::default()
    });
    let role = Role {
        metadata: meta.clone(),
        rules: Some(
            vec![
                PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    resource_names: Some(vec![checkpoint_name]),
                    verbs: vec!["get".into(), "update".into()],
                    ..PolicyRule::default()
                },
                PolicyRule {
                    api_groups: Some(vec!["coordination.k8s.io".into()]),
                    resources: Some(vec!["leases".into()]),
                    resource_names: Some(vec![name.clone()]),
                    verbs: vec!["get".into(), "update".into()],
                    ..PolicyRule::default()
                },
                PolicyRule {
                    api_groups: Some(vec!["azlog.io".into()]),
                    resources: Some(vec!["logsources/status".into()]),
                    resource_names: Some(vec![ls_name.clone()]),
                    verbs: vec!["patch".into()],
                    ..PolicyRule::default()
                },
            ]
            .into_iter()
            .chain(sharing)
            .collect(),
        ),
    };
    let role_binding = RoleBinding {
        metadata: meta.clone(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: source.metadata.namespace.clone(),
            ..Subject::default()
        }]),
    };

    // Created empty; the collector fills in its holder and renews it.
    let lease = Lease {
        metadata: state_meta,
        spec: None,
    };
    let deployment = Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            // One collector per LogSource, never two at once, unless they share the source
            // through Leases: two on one checkpoint would deliver every event twice.
            replicas: Some(rendered.replicas),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (
                        "app.kubernetes.io/name".to_owned(),
                        "azlog-collector".to_owned(),
                    ),
                    (LOG_SOURCE_LABEL.to_owned(), ls_name.clone()),
                ])),
                ..LabelSelector::default()
            },
            template: pod_template(source, rendered, defaults, &name, labels),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    Children {
        config_map,
        checkpoint,
        service_account,
        role,
        role_binding,
        lease,
        deployment,
    }
}

fn pod_template(
    source: &LogSource,
    rendered: &Rendered,
    defaults: &CollectorDefaults,
    name: &str,
    labels: BTreeMap<String, String>,
) -> PodTemplateSpec {
    let collector = source.spec.collector.clone().unwrap_or_default();
    let windows = rendered.windows;
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_owned(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        volume("state", &collector.state_volume.clone().unwrap_or_default()),
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("state", STATE_DIR, false),
    ];
    // By position: a Secret's name may hold dots, which a volume name may not.
    for (index, (secret, keys)) in rendered.secrets.iter().enumerate() {
        let volume = format!("secret-{index}");
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                // Only the keys the collector reads, readable by its group only.
                items: Some(
                    keys.iter()
                        .map(|k| KeyToPath {
                            key: k.clone(),
                            path: k.clone(),
                            mode: None,
                        })
                        .collect(),
                ),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount(&volume, &format!("{SECRETS_DIR}/{secret}"), true));
    }
    for files in &rendered.file_volumes {
        volumes.push(volume(&files.volume_name, &files.volume));
        mounts.push(mount(&files.volume_name, &files.directory, false));
    }
    let mut pod_labels = labels;
    if rendered.workload_identity.is_some() {
        pod_labels.insert("azure.workload.identity/use".into(), "true".into());
        volumes.push(Volume {
            name: "azure-identity-token".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some("api://AzureADTokenExchange".into()),
                        expiration_seconds: Some(3600),
                        path: FEDERATED_TOKEN_FILE.into(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("azure-identity-token", FEDERATED_TOKEN_DIR, true));
    }

    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("health".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let mut containers = vec![Container {
        name: "collector".into(),
        image: Some(collector.image.clone().unwrap_or_else(|| {
            if windows {
                defaults.windows_image.clone()
            } else {
                defaults.image.clone()
            }
        })),
        image_pull_policy: collector
            .image_pull_policy
            .clone()
            .or_else(|| defaults.image_pull_policy.clone()),
        // Who holds the checkpoint's Lease, as kubectl shows it.
        env: Some(vec![EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        args: Some(vec![
            "run".into(),
            "--config".into(),
            pod_path(windows, &format!("{CONFIG_DIR}/{CONFIG_FILE}")),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            collector.log_level.clone().unwrap_or_else(|| "info".into()),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("health".into()),
            container_port: i32::from(rendered.health_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 20)),
        // Not ready while a receiver or Azure is unreachable; the reason is in /readyz and the
        // LogSource status.
        readiness_probe: Some(probe("/readyz", 10)),
        resources: Some(
            collector
                .resources
                .clone()
                .unwrap_or_else(default_resources),
        ),
        // A HostProcess container takes its identity from the pod's Windows options; the Linux
        // settings do not apply to it.
        security_context: (!windows).then(restricted),
        volume_mounts: Some(mounts),
        ..Container::default()
    }];
    for (index, forwarder) in rendered.forwarders.iter().enumerate() {
        let f = &forwarder.spec;
        let mut mounts = vec![mount(
            &forwarder.volume_name,
            f.mount_path.as_deref().unwrap_or(FILES_DIR),
            false,
        )];
        if let Some(config) = &f.config {
            let volume = format!("forwarder-config-{index}");
            volumes.push(Volume {
                name: volume.clone(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config.config_map.clone(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
            let path = config.mount_path.as_deref().unwrap_or(FORWARDER_CONFIG_DIR);
            mounts.push(mount(&volume, path, true));
        }
        containers.push(Container {
            name: forwarder.name.clone(),
            image: Some(f.image.clone()),
            args: (!f.args.is_empty()).then(|| f.args.clone()),
            env: (!f.env.is_empty()).then(|| f.env.clone()),
            resources: f.resources.clone(),
            // The same bounds as the collector's: the Pod Security "restricted" profile and a
            // read-only root; it writes only to the shared volume.
            security_context: Some(restricted()),
            volume_mounts: Some(mounts),
            ..Container::default()
        });
    }

    let os = if windows { "windows" } else { "linux" };
    let mut node_selector = BTreeMap::from([("kubernetes.io/os".to_owned(), os.to_owned())]);
    node_selector.extend(collector.node_selector.clone());
    let security_context = if windows {
        // Only a HostProcess container reaches the node's event log; it shares the node's
        // network, as every HostProcess pod must.
        PodSecurityContext {
            windows_options: Some(WindowsSecurityContextOptions {
                host_process: Some(true),
                run_as_user_name: Some(WINDOWS_USER.into()),
                ..WindowsSecurityContextOptions::default()
            }),
            ..PodSecurityContext::default()
        }
    } else {
        PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(COLLECTOR_UID),
            run_as_group: Some(COLLECTOR_UID),
            fs_group: Some(COLLECTOR_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH.to_owned(),
                config_hash(rendered),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(name.to_owned()),
            // The collector talks to the API server for its checkpoint and status, nothing else
            // (its Role says so).
            automount_service_account_token: Some(true),
            containers,
            volumes: Some(volumes),
            node_selector: Some(node_selector),
            tolerations: (!collector.tolerations.is_empty()).then(|| collector.tolerations.clone()),
            security_context: Some(security_context),
            host_network: windows.then_some(true),
            // Cluster DNS names (a syslog receiver's Service) still resolve on the host network.
            dns_policy: windows.then(|| "ClusterFirstWithHostNet".into()),
            termination_grace_period_seconds: Some(60),
            ..PodSpec::default()
        }),
    }
}

/// Where a forwarder sees its configuration ConfigMap unless told otherwise.
const FORWARDER_CONFIG_DIR: &str = "/etc/azlog-forwarder";

/// Volume `name`: the claim `spec` names, else an emptyDir of its size limit.
fn volume(name: &str, spec: &FileVolume) -> Volume {
    Volume {
        name: name.to_owned(),
        persistent_volume_claim: spec.persistent_volume_claim.clone().map(|claim_name| {
            PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: Some(false),
            }
        }),
        empty_dir: spec
            .persistent_volume_claim
            .is_none()
            .then(|| EmptyDirVolumeSource {
                size_limit: spec.size_limit.clone().map(Quantity),
                ..EmptyDirVolumeSource::default()
            }),
        ..Volume::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// Non-root, no privilege escalation, no capabilities, read-only root filesystem.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("50m".into())),
            ("memory".to_owned(), Quantity("64Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("256Mi".into()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// Changes with the config and with which Secrets are mounted (not with their values, which the
/// operator never reads).
fn config_hash(rendered: &Rendered) -> String {
    let mut text = rendered.config_yaml.clone();
    for (secret, keys) in &rendered.secrets {
        text.push_str(secret);
        for key in keys {
            text.push_str(key);
        }
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;

    fn source(spec: serde_json::Value) -> LogSource {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource",
            "metadata": {"name": "audit", "namespace": "siem", "uid": "u-1"},
            "spec": spec,
        }))
        .expect("a LogSource")
    }

    fn children(spec: serde_json::Value) -> Children {
        let source = source(spec);
        let rendered = render(&source).expect("renders");
        build(
            &source,
            &rendered,
            &CollectorDefaults {
                image: "azlog/collector:test".into(),
                windows_image: "azlog/collector:test-windows".into(),
                image_pull_policy: None,
            },
        )
    }

    fn pod(children: &Children) -> &PodSpec {
        children
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    /// What the Pod Security "restricted" profile (Kubernetes 1.25+) refuses in `pod`.
    fn restricted_violations(pod: &PodSpec) -> Vec<String> {
        let mut found = Vec::new();
        if pod.host_network == Some(true)
            || pod.host_pid == Some(true)
            || pod.host_ipc == Some(true)
        {
            found.push("host namespaces".to_owned());
        }
        let pod_context = pod.security_context.clone().unwrap_or_default();
        let pod_seccomp = pod_context
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str());
        for volume in pod.volumes.iter().flatten() {
            let allowed = volume.config_map.is_some()
                || volume.secret.is_some()
                || volume.empty_dir.is_some()
                || volume.projected.is_some()
                || volume.persistent_volume_claim.is_some()
                || volume.downward_api.is_some()
                || volume.csi.is_some()
                || volume.ephemeral.is_some();
            if !allowed {
                found.push(format!("volume {} of a restricted type", volume.name));
            }
        }
        for c in &pod.containers {
            let context = c.security_context.clone().unwrap_or_default();
            if context.privileged == Some(true) {
                found.push(format!("{}: privileged", c.name));
            }
            if context.allow_privilege_escalation != Some(false) {
                found.push(format!("{}: allowPrivilegeEscalation not false", c.name));
            }
            let capabilities = context.capabilities.clone().unwrap_or_default();
            if !capabilities.drop.iter().flatten().any(|d| d == "ALL") {
                found.push(format!("{}: capabilities not dropped", c.name));
            }
            if capabilities
                .add
                .iter()
                .flatten()
                .any(|a| a != "NET_BIND_SERVICE")
            {
                found.push(format!("{}: capabilities added", c.name));
            }
            if context.run_as_non_root.or(pod_context.run_as_non_root) != Some(true) {
                found.push(format!("{}: runAsNonRoot not true", c.name));
            }
            if context.run_as_user.or(pod_context.run_as_user) == Some(0) {
                found.push(format!("{}: runs as root", c.name));
            }
            let seccomp = context
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str())
                .or(pod_seccomp);
            if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                found.push(format!("{}: no seccomp profile", c.name));
            }
            if c.ports.iter().flatten().any(|p| p.host_port.is_some()) {
                found.push(format!("{}: host port", c.name));
            }
        }
        found
    }

    #[test]
    fn every_linux_collector_pod_meets_the_restricted_pod_security_profile() {
        for spec in [
            serde_json::json!({"simulate": {}, "outputs": [{"syslog": {"address": "s:514"}}]}),
            serde_json::json!({"wad": {"account": "diag", "accountKey": {"name": "k", "key": "key1"}},
                               "outputs": [{"file": {"volume": {"persistentVolumeClaim": "logs"}}},
                                           {"forwarder": {"image": "fluent/fluent-bit:3.1"}}]}),
            serde_json::json!({"activityLog": {}, "subscriptionId": "00000000-0000-0000-0000-000000000001",
                               "credential": {"workloadIdentity": {"tenantId": "00000000-0000-0000-0000-0000000000aa", "clientId": "00000000-0000-0000-0000-0000000000bb"}},
                               "outputs": [{"syslog": {"address": "s:6514", "transport": "tls", "tls": {"ca": {"name": "ca", "key": "ca.crt"}}}}]}),
        ] {
            let children = children(spec.clone());
            assert_eq!(
                restricted_violations(pod(&children)),
                Vec::<String>::new(),
                "{spec}"
            );
        }
        // The checker itself finds what it is for: the HostProcess pod is not restricted, which
        // is why only namespaces the policy names may have one.
        let windows =
            children(serde_json::json!({"simulate": {}, "outputs": [{"windowsEventLog": {}}]}));
        assert!(restricted_violations(pod(&windows)).contains(&"host namespaces".to_owned()));
    }

    #[test]
    fn replicas_of_an_event_hub_may_manage_leases_in_their_namespace_and_only_they() {
        let spec = |replicas: i32| {
            serde_json::json!({"eventHubs": {"namespace": "contoso-logs", "hub": "insights-logs",
                                             "connectionString": {"name": "hub", "key": "listen"}},
                               "replicas": replicas,
                               "outputs": [{"syslog": {"address": "s:514"}}]})
        };
        let lease_verbs = |children: &Children| -> Vec<Vec<String>> {
            let rules = children.role.rules.clone().unwrap_or_default();
            rules
                .into_iter()
                .filter(|r| {
                    r.resources == Some(vec!["leases".to_owned()]) && r.resource_names.is_none()
                })
                .map(|r| r.verbs)
                .collect()
        };
        let three = children(spec(3));
        let deployment = three.deployment.spec.as_ref().expect("spec");
        assert_eq!(deployment.replicas, Some(3));
        assert_eq!(
            lease_verbs(&three),
            [["get", "list", "create", "update", "delete"]
                .map(String::from)
                .to_vec()]
        );
        let one = children(spec(1));
        assert_eq!(
            one.deployment.spec.as_ref().and_then(|s| s.replicas),
            Some(1)
        );
        assert!(
            lease_verbs(&one).is_empty(),
            "one collector names its one Lease"
        );
    }

    #[test]
    fn the_collector_runs_non_root_read_only_with_secrets_mounted_not_copied() {
        let c = children(serde_json::json!({
            "wad": {"account": "diagstore", "accountKey": {"name": "storage", "key": "key1"}},
            "outputs": [{"syslog": {"address": "siem:514"}}]
        }));
        let config = &c.config_map.data.as_ref().expect("data")[CONFIG_FILE];
        assert!(
            config.contains("accountKeyFile: /var/run/secrets/azlog/storage/key1"),
            "{config}"
        );
        let pod = pod(&c);
        let collector = &pod.containers[0];
        let sc = collector
            .security_context
            .as_ref()
            .expect("security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        let rules = c.role.rules.as_ref().expect("rules");
        assert!(
            rules
                .iter()
                .all(|r| r.resource_names.as_ref().is_some_and(|n| n.len() == 1)),
            "the collector may touch only its own checkpoint and LogSource"
        );
        let secret = pod
            .volumes
            .as_ref()
            .and_then(|v| v.iter().find_map(|v| v.secret.clone()))
            .expect("a secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("storage"));
        assert_eq!(secret.items.expect("items")[0].key, "key1");
        assert!(collector.readiness_probe.is_some() && collector.liveness_probe.is_some());
        let owner = &c
            .deployment
            .metadata
            .owner_references
            .as_ref()
            .expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("LogSource", Some(true))
        );
    }

    #[test]
    fn a_windows_event_log_output_runs_the_windows_image_as_a_host_process_on_a_windows_node() {
        let c = children(serde_json::json!({
            "wad": {"account": "diagstore", "accountKey": {"name": "storage", "key": "key1"}},
            "outputs": [{"windowsEventLog": {"source": "azlog-wad"}}],
            "collector": {
                "healthPort": 9470,
                "tolerations": [{"key": "os", "value": "windows", "effect": "NoSchedule"}],
            }
        }));
        let pod = pod(&c);
        assert_eq!(
            pod.node_selector.as_ref().expect("selector")["kubernetes.io/os"],
            "windows"
        );
        assert_eq!(
            pod.tolerations.as_ref().expect("tolerations")[0]
                .key
                .as_deref(),
            Some("os")
        );
        assert_eq!(pod.host_network, Some(true));
        let windows = pod
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.clone())
            .expect("windows options");
        assert_eq!(windows.host_process, Some(true));
        assert_eq!(windows.run_as_user_name.as_deref(), Some(WINDOWS_USER));
        let sc = pod.security_context.as_ref().expect("security context");
        assert!(
            sc.run_as_user.is_none() && sc.seccomp_profile.is_none(),
            "no Linux settings: {sc:?}"
        );
        let collector = &pod.containers[0];
        assert!(collector.security_context.is_none());
        assert_eq!(
            collector.image.as_deref(),
            Some("azlog/collector:test-windows")
        );
        assert_eq!(
            collector.ports.as_ref().expect("ports")[0].container_port,
            9470
        );
        // Relative: a HostProcess container's volumes are below its working directory.
        assert!(
            collector
                .args
                .as_ref()
                .expect("args")
                .contains(&"etc/azlog/collector.yaml".to_owned())
        );
        let config = &c.config_map.data.as_ref().expect("data")[CONFIG_FILE];
        for expected in [
            "accountKeyFile: var/run/secrets/azlog/storage/key1",
            "stateDir: var/lib/azlog",
            "listen: 0.0.0.0:9470",
            "source: azlog-wad",
        ] {
            assert!(config.contains(expected), "{expected} in {config}");
        }
    }

    #[test]
    fn a_forwarder_shares_the_file_volume_and_a_spec_change_changes_the_config_hash() {
        let spec = |address: &str| {
            serde_json::json!({
                "simulate": {"rate": 1.0},
                "outputs": [{"syslog": {"address": address}},
                            {"forwarder": {"image": "fluent/fluent-bit:3.1", "args": ["-c", "/fluent-bit/etc/azlog.conf"]}}]
            })
        };
        let a = children(spec("siem-a:514"));
        let pod_a = pod(&a);
        assert_eq!(pod_a.containers.len(), 2);
        let shared = |container: &Container| {
            container
                .volume_mounts
                .as_ref()
                .expect("mounts")
                .iter()
                .find(|m| m.name == "files-1")
                .map(|m| m.mount_path.clone())
        };
        assert_eq!(
            shared(&pod_a.containers[0]).as_deref(),
            Some("/var/log/azlog/forwarder-1")
        );
        assert_eq!(
            shared(&pod_a.containers[1]).as_deref(),
            Some("/var/log/azlog")
        );
        let hash = |c: &Children| {
            c.deployment
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.clone())
                .expect("annotations")[CONFIG_HASH]
                .clone()
        };
        assert_eq!(hash(&a), hash(&children(spec("siem-a:514"))));
        assert_ne!(hash(&a), hash(&children(spec("siem-b:514"))));
    }

    #[test]
    fn the_state_directory_is_an_empty_dir_unless_a_claim_is_named() {
        let state = |collector: serde_json::Value| {
            let c = children(serde_json::json!({
                "simulate": {}, "outputs": [{"syslog": {"address": "s:514"}}],
                "collector": collector,
            }));
            let pod = pod(&c);
            let mounted = pod.containers[0].volume_mounts.iter().flatten().any(|m| {
                m.name == "state" && m.mount_path == STATE_DIR && m.read_only != Some(true)
            });
            assert!(
                mounted,
                "the state volume is mounted writable at {STATE_DIR}"
            );
            pod.volumes
                .iter()
                .flatten()
                .find(|v| v.name == "state")
                .cloned()
                .expect("state volume")
        };
        let default = state(serde_json::json!({}));
        assert!(default.empty_dir.is_some() && default.persistent_volume_claim.is_none());
        let claimed =
            state(serde_json::json!({"stateVolume": {"persistentVolumeClaim": "azlog-state"}}));
        assert_eq!(
            claimed
                .persistent_volume_claim
                .map(|c| c.claim_name)
                .as_deref(),
            Some("azlog-state")
        );
        assert!(claimed.empty_dir.is_none());
        let sized = state(serde_json::json!({"stateVolume": {"sizeLimit": "256Mi"}}));
        assert_eq!(
            sized
                .empty_dir
                .and_then(|e| e.size_limit)
                .map(|q| q.0)
                .as_deref(),
            Some("256Mi")
        );
    }

    #[test]
    fn the_children_the_collector_writes_are_labelled_for_a_metadata_only_watch() {
        let c = children(
            serde_json::json!({"simulate": {}, "outputs": [{"syslog": {"address": "s:514"}}]}),
        );
        let state = |labels: &Option<BTreeMap<String, String>>| {
            labels
                .as_ref()
                .and_then(|l| l.get(COLLECTOR_STATE.0))
                .cloned()
        };
        assert_eq!(
            state(&c.checkpoint.metadata.labels).as_deref(),
            Some("true")
        );
        assert_eq!(state(&c.lease.metadata.labels).as_deref(), Some("true"));
        assert_eq!(state(&c.config_map.metadata.labels), None);
        assert_eq!(state(&c.deployment.metadata.labels), None);
    }

    #[test]
    fn a_forwarder_mounts_its_config_map_and_keeps_its_files_on_a_claim() {
        let c = children(serde_json::json!({
            "simulate": {},
            "outputs": [{"forwarder": {
                "image": "fluent/fluent-bit:3.1",
                "args": ["-c", "/etc/azlog-forwarder/azlog.conf"],
                "config": {"configMap": "fluent-bit-azlog"},
                "volume": {"persistentVolumeClaim": "forwarded"},
                "retention": {"maxAge": "7d"},
            }}]
        }));
        let pod = pod(&c);
        let sidecar = &pod.containers[1];
        let mounts = sidecar.volume_mounts.clone().unwrap_or_default();
        let config = mounts
            .iter()
            .find(|m| m.mount_path == FORWARDER_CONFIG_DIR)
            .expect("the config is mounted");
        assert_eq!(config.read_only, Some(true));
        let volume = |name: &str| {
            pod.volumes
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .cloned()
                .expect("volume")
        };
        assert_eq!(
            volume(&config.name).config_map.map(|c| c.name).as_deref(),
            Some("fluent-bit-azlog")
        );
        let files = mounts
            .iter()
            .find(|m| m.mount_path == FILES_DIR)
            .expect("files");
        assert_eq!(
            volume(&files.name)
                .persistent_volume_claim
                .map(|c| c.claim_name)
                .as_deref(),
            Some("forwarded")
        );
        let collector_config = &c.config_map.data.as_ref().expect("data")[CONFIG_FILE];
        let parsed: serde_json::Value = serde_yaml::from_str(collector_config).expect("yaml");
        assert_eq!(
            parsed["outputs"][0]["file"]["retention"],
            serde_json::json!({"maxBytes": 1u64 << 30, "maxAge": "7days"})
        );
    }
}
