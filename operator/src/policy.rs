//! What the cluster administrator lets LogSource authors cause, beyond collecting logs. The
//! operator's flags (the chart's `policy` values) set it; a LogSource cannot widen it.
//!
//! Default: the operator's own collector image only, no forwarder sidecar, no Windows HostProcess
//! collector, endpoints only on the cloud's own hosts. [`check`] is pure: it runs between rendering
//! and building the children, and its refusal names the field and the setting that would allow it.

use azlog_config::azure::Endpoints;
use azlog_config::{AzureConfig, Cloud};

use crate::crd::LogSource;

/// The label a Secret carries, with the value `"true"`, to let LogSources of its namespace mount
/// it. Without it the operator mounts nothing from that Secret: a namespace's Secrets are not
/// all meant for a log collector.
pub const SECRET_ACCESS_LABEL: &str = "azlog.io/logsource-access";

/// The administrator's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Images a forwarder sidecar may run: exact references, or prefixes ending in `*`
    /// (`registry.example/fluent-bit:*`).
    pub forwarder_images: Vec<String>,
    /// Namespaces whose LogSources may run a Windows HostProcess collector (`*` for every one).
    pub windows_namespaces: Vec<String>,
    /// Hosts an endpoint override may name besides the cloud's own: exact names or addresses, or
    /// `*.suffix`.
    pub endpoint_hosts: Vec<String>,
    /// Whether `spec.collector.image` may replace the operator's collector image.
    pub collector_image_override: bool,
}

/// A refusal: the LogSource field and why, with what would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every way `source` exceeds `policy`; empty when it does not.
pub fn check(source: &LogSource, policy: &Policy) -> Vec<Refusal> {
    let spec = &source.spec;
    let namespace = source.metadata.namespace.as_deref().unwrap_or_default();
    let mut refusals = Vec::new();
    let mut refuse = |path: String, message: String| refusals.push(Refusal { path, message });

    if let Some(image) = spec.collector.as_ref().and_then(|c| c.image.as_deref())
        && !policy.collector_image_override
    {
        refuse(
            "spec.collector.image".into(),
            format!(
                "{image:?}: collectors run the operator's image; remove the field, or ask the \
                 cluster admin to allow overrides (chart value policy.collectorImageOverride)"
            ),
        );
    }
    for (i, output) in spec.outputs.iter().enumerate() {
        if let Some(forwarder) = &output.forwarder
            && !policy
                .forwarder_images
                .iter()
                .any(|allowed| image_matches(allowed, &forwarder.image))
        {
            refuse(
                format!("spec.outputs[{i}].forwarder.image"),
                format!(
                    "{:?} is not on the operator's forwarder allow-list ({}); ask the cluster \
                     admin to add it (chart value policy.forwarderImages)",
                    forwarder.image,
                    listed(&policy.forwarder_images)
                ),
            );
        }
        if output.windows_event_log.is_some()
            && !policy
                .windows_namespaces
                .iter()
                .any(|n| n == "*" || n == namespace)
        {
            refuse(
                format!("spec.outputs[{i}].windowsEventLog"),
                format!(
                    "namespace {namespace} may not run Windows HostProcess collectors (allowed: \
                     {}); ask the cluster admin (chart value policy.windowsNamespaces)",
                    listed(&policy.windows_namespaces)
                ),
            );
        }
    }

    let cloud = Endpoints::resolve(&AzureConfig {
        cloud: spec.cloud.unwrap_or(Cloud::AzureCloud),
        ..AzureConfig::default()
    });
    let mut endpoint = |path: &str, url: Option<&str>, own: &str| {
        let Some(url) = url else { return };
        let host = host_of(url);
        let allowed = host.as_deref().is_some_and(|host| {
            host.eq_ignore_ascii_case(own)
                || policy
                    .endpoint_hosts
                    .iter()
                    .any(|pattern| host_matches(pattern, host))
        });
        if !allowed {
            refuse(
                path.to_owned(),
                format!(
                    "{url:?} is not {own} nor on the operator's endpoint allow-list ({}): the \
                     collector sends credentials to this host; ask the cluster admin to add it \
                     (chart value policy.endpointHosts)",
                    listed(&policy.endpoint_hosts)
                ),
            );
        }
    };
    if let Some(overrides) = &spec.endpoints {
        endpoint(
            "spec.endpoints.authorityHost",
            overrides.authority_host.as_deref(),
            &host_of(&cloud.authority_host).unwrap_or_default(),
        );
        endpoint(
            "spec.endpoints.resourceManager",
            overrides.resource_manager.as_deref(),
            &host_of(&cloud.resource_manager).unwrap_or_default(),
        );
        endpoint(
            "spec.endpoints.graph",
            overrides.graph.as_deref(),
            &host_of(&cloud.graph).unwrap_or_default(),
        );
    }
    if let Some(wad) = &spec.wad {
        endpoint(
            "spec.wad.endpoint",
            wad.endpoint.as_deref(),
            &format!("{}.table.{}", wad.account, cloud.storage_suffix),
        );
    }
    if let Some(hub) = &spec.event_hubs {
        // A namespace written as a host names where tokens go as much as an endpoint does.
        let label = hub
            .namespace
            .as_deref()
            .map(|n| n.split('.').next().unwrap_or_default());
        let own = format!("{}.{}", label.unwrap_or_default(), cloud.event_hubs_suffix);
        let as_host = hub.namespace.as_deref().filter(|n| n.contains('.'));
        endpoint(
            "spec.eventHubs.namespace",
            as_host.map(|host| format!("amqps://{host}")).as_deref(),
            &own,
        );
        endpoint("spec.eventHubs.endpoint", hub.endpoint.as_deref(), &own);
    }
    if let Some(logs) = &spec.diagnostic_logs {
        endpoint(
            "spec.diagnosticLogs.endpoint",
            logs.endpoint.as_deref(),
            &format!("{}.blob.{}", logs.account, cloud.storage_suffix),
        );
    }
    refusals
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn image_matches(allowed: &str, image: &str) -> bool {
    match allowed.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => allowed == image,
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", suffix.to_ascii_lowercase())),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// The host of an absolute URL, without brackets for IPv6.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    // Userinfo would let `https://management.azure.com@evil.example` pass a prefix check.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(namespace: &str, spec: serde_json::Value) -> LogSource {
        serde_json::from_value(json!({
            "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource",
            "metadata": {"name": "s", "namespace": namespace},
            "spec": spec,
        }))
        .expect("a LogSource")
    }

    fn paths(refusals: &[Refusal]) -> Vec<&str> {
        refusals.iter().map(|r| r.path.as_str()).collect()
    }

    fn outputs(extra: serde_json::Value) -> serde_json::Value {
        json!([{"syslog": {"address": "siem:514"}}, extra])
    }

    #[test]
    fn by_default_a_logsource_gets_no_image_sidecar_host_process_or_foreign_endpoint() {
        let spec = json!({
            "activityLog": {},
            "endpoints": {"resourceManager": "https://arm.evil.example", "authorityHost": "https://login.microsoftonline.com"},
            "collector": {"image": "evil/collector:1"},
            "outputs": [
                {"forwarder": {"image": "fluent/fluent-bit:3.1"}},
                {"windowsEventLog": {}},
            ],
        });
        let refusals = check(&source("team-a", spec), &Policy::default());
        assert_eq!(
            paths(&refusals),
            [
                "spec.collector.image",
                "spec.outputs[0].forwarder.image",
                "spec.outputs[1].windowsEventLog",
                "spec.endpoints.resourceManager",
            ]
        );
        assert!(refusals[1].message.contains("policy.forwarderImages"));
        assert!(refusals[2].message.contains("namespace team-a"));
        assert!(refusals[3].message.contains("management.azure.com"));
    }

    #[test]
    fn an_event_hub_is_read_only_in_the_clouds_namespaces_unless_the_policy_names_the_host() {
        let hub = |fields: serde_json::Value| {
            let mut hub = json!({"hub": "insights-logs"});
            if let (Some(h), Some(f)) = (hub.as_object_mut(), fields.as_object()) {
                h.extend(f.clone());
            }
            check(
                &source(
                    "team-a",
                    json!({"eventHubs": hub, "outputs": outputs(json!({"syslog": {"address": "s:514"}}))}),
                ),
                &Policy {
                    endpoint_hosts: vec!["*.privatelink.example".into()],
                    ..Policy::default()
                },
            )
        };
        assert_eq!(hub(json!({"namespace": "contoso-logs"})), []);
        assert_eq!(
            hub(json!({"namespace": "contoso-logs.servicebus.windows.net"})),
            []
        );
        assert_eq!(
            hub(json!({"endpoint": "amqps://hub.privatelink.example:5671"})),
            []
        );
        assert_eq!(
            paths(&hub(
                json!({"namespace": "contoso-logs.servicebus.windows.net.evil.example"})
            )),
            ["spec.eventHubs.namespace"]
        );
        assert_eq!(
            paths(&hub(
                json!({"namespace": "contoso-logs", "endpoint": "amqps://evil.example"})
            )),
            ["spec.eventHubs.endpoint"]
        );
    }

    #[test]
    fn the_policy_allows_what_it_names_and_nothing_near_it() {
        let policy = Policy {
            forwarder_images: vec!["registry.example/fluent-bit:*".into(), "vector:0.40".into()],
            windows_namespaces: vec!["windows-logs".into()],
            endpoint_hosts: vec!["*.privatelink.example".into(), "10.200.0.1".into()],
            collector_image_override: false,
        };
        let allowed = json!({
            "wad": {"account": "diag", "endpoint": "https://10.200.0.1:10002/diag"},
            "endpoints": {"graph": "https://graph.privatelink.example/", "resourceManager": "https://management.azure.com"},
            "outputs": [{"forwarder": {"image": "registry.example/fluent-bit:3.1"}}, {"forwarder": {"image": "vector:0.40"}}, {"windowsEventLog": {}}],
        });
        assert_eq!(check(&source("windows-logs", allowed), &policy), []);
        let near = json!({
            "wad": {"account": "diag", "endpoint": "https://diag.table.core.windows.net.evil.example/diag"},
            "endpoints": {"graph": "https://privatelink.example.evil/", "resourceManager": "https://management.azure.com@evil.example/"},
            "outputs": [{"forwarder": {"image": "registry.example/fluent-bitx"}}, {"forwarder": {"image": "vector:0.40-evil"}}, {"windowsEventLog": {}}],
        });
        assert_eq!(
            paths(&check(&source("team-a", near), &policy)),
            [
                "spec.outputs[0].forwarder.image",
                "spec.outputs[1].forwarder.image",
                "spec.outputs[2].windowsEventLog",
                "spec.endpoints.resourceManager",
                "spec.endpoints.graph",
                "spec.wad.endpoint",
            ]
        );
    }

    #[test]
    fn a_storage_endpoint_must_be_the_named_accounts_own() {
        let spec = |account: &str, endpoint: &str| json!({"diagnosticLogs": {"account": account, "endpoint": endpoint}, "outputs": outputs(json!({"file": {}}))});
        let ok = source("a", spec("diag", "https://diag.blob.core.windows.net"));
        assert_eq!(check(&ok, &Policy::default()), []);
        let other = source("a", spec("diag", "https://attacker.blob.core.windows.net"));
        assert_eq!(
            paths(&check(&other, &Policy::default())),
            ["spec.diagnosticLogs.endpoint"]
        );
        let gov = source(
            "a",
            json!({"cloud": "AzureUSGovernment", "wad": {"account": "diag", "endpoint": "https://diag.table.core.usgovcloudapi.net"}, "outputs": outputs(json!({"file": {}}))}),
        );
        assert_eq!(check(&gov, &Policy::default()), []);
    }

    #[test]
    fn hosts_are_read_past_userinfo_ports_and_brackets() {
        assert_eq!(
            host_of("https://a.example:8443/x").as_deref(),
            Some("a.example")
        );
        assert_eq!(
            host_of("https://good.example@evil.example/").as_deref(),
            Some("evil.example")
        );
        assert_eq!(host_of("https://[::1]:8443/").as_deref(), Some("::1"));
        assert_eq!(
            host_of("HTTPS://Management.Azure.com").as_deref(),
            Some("management.azure.com")
        );
        assert_eq!(host_of("management.azure.com"), None);
    }
}
