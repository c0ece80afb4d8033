//! `kubectl azlog source add` and `delete`: a LogSource from azlog.exe's arguments, checked with
//! the operator's own rendering before anything is sent, so that a bad account name or
//! subscription id is refused with its field and no request is made.

use std::collections::BTreeMap;

use azlog_operator::crd::LogSource;
use azlog_operator::policy::SECRET_ACCESS_LABEL;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::cluster::{self, Target};
use crate::{Failure, print};

/// What azlog.exe called a source type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// VM diagnostics tables: ACCOUNT.
    Wad,
    /// Resource logs archived to blobs: ACCOUNT.
    DiagnosticLogs,
    /// What diagnostic settings and Entra ID stream to an event hub: NAMESPACE HUB.
    EventHubs,
    /// The Activity Log: SUBSCRIPTION....
    ActivityLog,
    /// Defender for Cloud alerts: SUBSCRIPTION....
    Alerts,
    /// Entra ID audit logs (and sign-ins with --sign-ins).
    EntraAudit,
    /// Simulated records, no Azure account needed.
    Simulate,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The LogSource's name (azlog.exe's source name).
    pub name: String,
    /// The source type.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The storage account (wad, diagnostic-logs), the namespace and hub (event-hubs) or the
    /// subscription ids (activity-log, alerts).
    pub args: Vec<String>,
    /// wad: the table (default WADWindowsEventLogsTable).
    #[arg(long)]
    pub table: Option<String>,
    /// The Secret holding the storage account key, as SECRET or SECRET/KEY (key default
    /// accountKey).
    #[arg(long, value_name = "SECRET[/KEY]")]
    pub key_secret: Option<String>,
    /// The storage account key itself: it is written to a Secret (azlog-NAME-storage), never into
    /// the LogSource. Not with --dry-run.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// The Secret holding a SAS token instead of a key, as SECRET or SECRET/KEY (key default
    /// sasToken).
    #[arg(long, value_name = "SECRET[/KEY]")]
    pub sas_secret: Option<String>,
    /// event-hubs: the Secret holding a Listen connection string, as SECRET or SECRET/KEY (key
    /// default connectionString); without it, the credential signs in.
    #[arg(long, value_name = "SECRET[/KEY]")]
    pub connection_string_secret: Option<String>,
    /// event-hubs: the consumer group (default $Default; give azlog its own).
    #[arg(long)]
    pub consumer_group: Option<String>,
    /// event-hubs: how many collectors divide the hub's partitions.
    #[arg(long)]
    pub replicas: Option<i32>,
    /// diagnostic-logs: only this category (repeat for more).
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// entra-audit: also read sign-ins (needs Entra ID P1).
    #[arg(long)]
    pub sign_ins: bool,
    /// simulate: events per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The subscription the source belongs to (azlog.exe's NAME.SUBSCRIPTION).
    #[arg(long)]
    pub subscription: Option<String>,
    /// Sign in with workload identity, as TENANT/CLIENT_ID.
    #[arg(long, value_name = "TENANT/CLIENT_ID")]
    pub workload_identity: Option<String>,
    /// Sign in with the node's managed identity (a user-assigned one by client id).
    #[arg(long, value_name = "CLIENT_ID", num_args = 0..=1, default_missing_value = "")]
    pub managed_identity: Option<String>,
    /// Sign in with a service principal's client secret kept in a Secret, as
    /// TENANT/CLIENT_ID/SECRET[/KEY] (key default clientSecret).
    #[arg(long, value_name = "TENANT/CLIENT_ID/SECRET[/KEY]")]
    pub client_secret: Option<String>,
    /// The SubscriptionAuthorization that grants the identity its access.
    #[arg(long, value_name = "NAME")]
    pub authorization: Option<String>,
    /// Send to a syslog receiver at HOST:PORT (repeat for more).
    #[arg(long, value_name = "HOST:PORT")]
    pub syslog: Vec<String>,
    /// Syslog over TLS.
    #[arg(long)]
    pub tls: bool,
    /// Syslog over UDP.
    #[arg(long, conflicts_with = "tls")]
    pub udp: bool,
    /// The syslog message body.
    #[arg(long, value_parser = ["json", "message", "cef", "leef", "eventXml"])]
    pub body: Option<String>,
    /// Write azlog's JSON folders (AzureResourceManagerJson, …).
    #[arg(long)]
    pub files: bool,
    /// The file format.
    #[arg(long, value_parser = ["ndjson", "jsonld"], requires = "files")]
    pub format: Option<String>,
    /// Run this forwarder image as a sidecar reading the files (the operator's policy must allow
    /// it).
    #[arg(long, value_name = "IMAGE")]
    pub forwarder: Option<String>,
    /// Print the LogSource as YAML instead of applying it (for a GitOps repository).
    #[arg(long)]
    pub dry_run: bool,
}

/// `SECRET` or `SECRET/KEY`, as a secretKeyRef.
fn secret_ref(text: &str, default_key: &str) -> Value {
    match text.split_once('/') {
        Some((name, key)) => json!({"name": name, "key": key}),
        None => json!({"name": text, "key": default_key}),
    }
}

/// The name of the Secret a key given on the command line goes to.
fn key_secret_name(source: &str) -> String {
    format!("azlog-{source}-storage")
}

/// The LogSource the arguments describe.
fn log_source(args: &AddArgs, namespace: &str) -> Result<LogSource, Failure> {
    let usage = |message: &str| Err(Failure(message.to_owned()));
    let storage = |account: &str| -> Result<Value, Failure> {
        let mut source = json!({"account": account});
        match (&args.key_secret, &args.key, &args.sas_secret) {
            (Some(secret), None, None) => source["accountKey"] = secret_ref(secret, "accountKey"),
            (None, Some(_), None) => {
                source["accountKey"] =
                    json!({"name": key_secret_name(&args.name), "key": "accountKey"})
            }
            (None, None, Some(secret)) => source["sasToken"] = secret_ref(secret, "sasToken"),
            (None, None, None) if args.credential().is_some() => {}
            _ => {
                return Err(Failure(
                    "give one of --key-secret SECRET[/KEY], --key KEY, --sas-secret SECRET[/KEY], or a credential (--workload-identity, --managed-identity, --client-secret)".into(),
                ));
            }
        }
        Ok(source)
    };
    let mut spec = serde_json::Map::new();
    match args.kind {
        Kind::Wad | Kind::DiagnosticLogs => {
            let [account] = args.args.as_slice() else {
                return usage(
                    "give the storage account: kubectl azlog source add NAME wad ACCOUNT --key-secret SECRET",
                );
            };
            let mut source = storage(account)?;
            if args.kind == Kind::Wad {
                if let Some(table) = &args.table {
                    source["table"] = table.as_str().into();
                }
                spec.insert("wad".into(), source);
            } else {
                if !args.categories.is_empty() {
                    source["categories"] = json!(args.categories);
                }
                spec.insert("diagnosticLogs".into(), source);
            }
        }
        Kind::EventHubs => {
            let [namespace, hub] = args.args.as_slice() else {
                return usage(
                    "give the namespace and the hub: kubectl azlog source add NAME event-hubs NAMESPACE HUB --connection-string-secret SECRET",
                );
            };
            let mut source = json!({"namespace": namespace, "hub": hub});
            if let Some(secret) = &args.connection_string_secret {
                source["connectionString"] = secret_ref(secret, "connectionString");
            }
            if let Some(group) = &args.consumer_group {
                source["consumerGroup"] = group.as_str().into();
            }
            spec.insert("eventHubs".into(), source);
            if let Some(replicas) = args.replicas {
                spec.insert("replicas".into(), replicas.into());
            }
        }
        Kind::ActivityLog | Kind::Alerts => {
            if args.args.is_empty() {
                return usage(
                    "give at least one subscription id: kubectl azlog source add NAME activity-log SUBSCRIPTION...",
                );
            }
            let field = if args.kind == Kind::Alerts {
                "securityAlerts"
            } else {
                "activityLog"
            };
            spec.insert(field.into(), json!({"subscriptions": args.args}));
        }
        Kind::EntraAudit => {
            let logs = if args.sign_ins {
                json!(["directoryAudits", "signIns"])
            } else {
                json!(["directoryAudits"])
            };
            spec.insert("entraAudit".into(), json!({"logs": logs}));
        }
        Kind::Simulate => {
            spec.insert("simulate".into(), json!({"rate": args.rate}));
        }
    }
    if !matches!(
        args.kind,
        Kind::Wad | Kind::DiagnosticLogs | Kind::EventHubs | Kind::ActivityLog | Kind::Alerts
    ) && !args.args.is_empty()
    {
        return usage(
            &format!("{:?} takes no positional arguments besides NAME", args.kind).to_lowercase(),
        );
    }
    if let Some(subscription) = &args.subscription {
        spec.insert("subscriptionId".into(), subscription.as_str().into());
    }
    if let Some(credential) = args.credential() {
        spec.insert("credential".into(), credential?);
    }
    if let Some(name) = &args.authorization {
        spec.insert("authorizationRef".into(), json!({"name": name}));
    }
    spec.insert("outputs".into(), Value::Array(args.outputs()?));
    let object = json!({
        "apiVersion": "azlog.io/v1alpha1",
        "kind": "LogSource",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": Value::Object(spec),
    });
    let source: LogSource = serde_json::from_value(object)
        .map_err(|e| Failure(format!("cannot build the LogSource: {e}")))?;
    // The operator's own checks, with the field each problem is in.
    azlog_operator::render::render(&source).map_err(|e| Failure(e.to_string()))?;
    Ok(source)
}

impl AddArgs {
    fn credential(&self) -> Option<Result<Value, Failure>> {
        let chosen = [
            self.workload_identity.is_some(),
            self.managed_identity.is_some(),
            self.client_secret.is_some(),
        ];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Some(Err(Failure(
                "give one credential: --workload-identity, --managed-identity or --client-secret"
                    .into(),
            )));
        }
        if let Some(text) = &self.workload_identity {
            return Some(match text.split_once('/') {
                Some((tenant, client)) => {
                    Ok(json!({"workloadIdentity": {"tenantId": tenant, "clientId": client}}))
                }
                None => Err(Failure(format!(
                    "--workload-identity {text}: write TENANT/CLIENT_ID"
                ))),
            });
        }
        if let Some(client) = &self.managed_identity {
            let identity = if client.is_empty() {
                json!({})
            } else {
                json!({"clientId": client})
            };
            return Some(Ok(json!({"managedIdentity": identity})));
        }
        let text = self.client_secret.as_ref()?;
        let parts: Vec<&str> = text.splitn(3, '/').collect();
        Some(match parts.as_slice() {
            [tenant, client, secret] => Ok(json!({"clientSecret": {
                "tenantId": tenant, "clientId": client, "secret": secret_ref(secret, "clientSecret"),
            }})),
            _ => Err(Failure(format!(
                "--client-secret {text}: write TENANT/CLIENT_ID/SECRET[/KEY]"
            ))),
        })
    }

    fn outputs(&self) -> Result<Vec<Value>, Failure> {
        let mut outputs = Vec::new();
        for address in &self.syslog {
            let mut syslog = json!({"address": address});
            if self.tls {
                syslog["transport"] = "tls".into();
            } else if self.udp {
                syslog["transport"] = "udp".into();
            }
            if let Some(body) = &self.body {
                syslog["body"] = body.as_str().into();
            }
            outputs.push(json!({"syslog": syslog}));
        }
        if self.files || self.forwarder.is_some() {
            let mut file = json!({});
            if let Some(format) = &self.format {
                file["format"] = format.as_str().into();
            }
            outputs.push(json!({"file": file}));
        }
        if let Some(image) = &self.forwarder {
            outputs.push(json!({"forwarder": {"image": image}}));
        }
        if outputs.is_empty() {
            return Err(Failure(
                "say where events go: --syslog HOST:PORT, --files, or --forwarder IMAGE".into(),
            ));
        }
        if (self.tls || self.udp || self.body.is_some()) && self.syslog.is_empty() {
            return Err(Failure(
                "--tls, --udp and --body go with --syslog HOST:PORT".into(),
            ));
        }
        Ok(outputs)
    }
}

pub async fn add(target: &Target, args: AddArgs) -> Result<(), Failure> {
    if args.dry_run && args.key.is_some() {
        return Err(Failure(
            "--key writes a Secret, which a dry run must not print: create the Secret yourself and give --key-secret SECRET[/KEY]".into(),
        ));
    }
    // Built and checked before connecting: a mistake costs no request. The namespace only names
    // where the resource goes, so the one connected to replaces the hint.
    let namespace_hint = target.namespace.clone().unwrap_or_else(|| "default".into());
    let mut source = log_source(&args, &namespace_hint)?;
    if args.dry_run {
        // The namespace is the one the manifest is applied to.
        source.metadata.namespace = target.namespace.clone();
        print(&cluster::yaml(&source)?);
        return Ok(());
    }
    let (client, namespace) = cluster::connect(target).await?;
    source.metadata.namespace = Some(namespace.clone());
    let api: Api<LogSource> = Api::namespaced(client.clone(), &namespace);
    let applied = cluster::apply(&api, &args.name, &source).await?;
    if let Some(key) = &args.key {
        let secrets: Api<Secret> = Api::namespaced(client, &namespace);
        let name = key_secret_name(&args.name);
        cluster::apply(&secrets, &name, &key_secret(&applied, &name, key)).await?;
        eprintln!("secret/{name} holds the account key (owned by the LogSource, deleted with it)");
    }
    print(&format!(
        "logsource.azlog.io/{} applied in namespace {namespace}\n",
        args.name
    ));
    Ok(())
}

/// A Secret with the account key, owned by the LogSource and opted in to being mounted by it.
fn key_secret(owner: &LogSource, name: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: owner.namespace(),
            labels: Some(BTreeMap::from([(
                SECRET_ACCESS_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: LogSource::api_version(&()).into_owned(),
                kind: LogSource::kind(&()).into_owned(),
                name: owner.name_any(),
                uid: owner.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "accountKey".to_owned(),
            ByteString(key.trim().as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

pub async fn delete(target: &Target, name: &str) -> Result<(), Failure> {
    let (client, namespace) = cluster::connect(target).await?;
    let api: Api<LogSource> = Api::namespaced(client, &namespace);
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(|e| Failure(cluster::explain(&e, &format!("delete logsource {name}"))))?;
    print(&format!(
        "logsource.azlog.io/{name} deleted from namespace {namespace}\n"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        add: AddArgs,
    }

    fn parse(line: &str) -> AddArgs {
        Wrapper::try_parse_from(std::iter::once("add").chain(line.split_whitespace()))
            .expect("arguments")
            .add
    }

    #[test]
    fn an_event_hub_source_names_its_connection_string_by_reference_and_its_replicas() {
        let source = log_source(
            &parse(
                "streamed event-hubs contoso-logs insights-logs --connection-string-secret hub --consumer-group azlog --replicas 3 --syslog siem:514",
            ),
            "siem",
        )
        .expect("valid");
        let hub = source.spec.event_hubs.expect("eventHubs");
        assert_eq!(hub.namespace.as_deref(), Some("contoso-logs"));
        assert_eq!(hub.hub, "insights-logs");
        assert_eq!(hub.consumer_group.as_deref(), Some("azlog"));
        let secret = hub.connection_string.expect("a reference");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("hub", "connectionString")
        );
        assert_eq!(source.spec.replicas, Some(3));
        let Err(Failure(message)) =
            log_source(&parse("streamed event-hubs contoso-logs --files"), "siem")
        else {
            panic!("a hub is required");
        };
        assert!(message.contains("NAMESPACE HUB"), "{message}");
    }

    #[test]
    fn azlog_exe_s_wad_source_becomes_a_log_source_with_its_key_by_reference() {
        let source = log_source(
            &parse(
                "web wad contosodiag --key-secret diag/key1 --syslog siem:6514 --tls --body cef",
            ),
            "siem",
        )
        .expect("valid");
        let wad = source.spec.wad.expect("wad");
        assert_eq!(wad.account, "contosodiag");
        let key = wad.account_key.expect("key ref");
        assert_eq!((key.name.as_str(), key.key.as_str()), ("diag", "key1"));
        let syslog = source.spec.outputs[0].syslog.as_ref().expect("syslog");
        assert_eq!(syslog.address, "siem:6514");
        let with_key = log_source(&parse("web wad contosodiag --key s3cr3t== --files"), "siem")
            .expect("valid");
        let text = serde_json::to_string(&with_key).expect("json");
        assert!(
            !text.contains("s3cr3t"),
            "the key is never in the LogSource: {text}"
        );
        assert!(text.contains("azlog-web-storage"));
    }

    #[test]
    fn mistakes_are_refused_with_their_field_before_any_request() {
        let bad_account = log_source(
            &parse("web wad Not_An_Account --key-secret k --files"),
            "ns",
        )
        .expect_err("refused");
        assert!(
            bad_account.0.contains("spec.wad.account"),
            "{}",
            bad_account.0
        );
        let bad_sub = log_source(&parse("act activity-log 1234 --workload-identity 72f988bf-86f1-41af-91ab-2d7cd011db47/c44b4083-3bb0-49c1-b47d-974e53cbdf3c --files"), "ns").expect_err("refused");
        assert!(
            bad_sub.0.contains("spec.activityLog.subscriptions[0]"),
            "{}",
            bad_sub.0
        );
        let nowhere = log_source(&parse("sim simulate"), "ns").expect_err("refused");
        assert!(nowhere.0.contains("--syslog HOST:PORT"), "{}", nowhere.0);
    }
}
