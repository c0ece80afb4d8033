//! Reaching the cluster as kubectl does: `--kubeconfig` or `KUBECONFIG` or `~/.kube/config`,
//! `--context`, and `-n/--namespace` or the context's namespace.

use std::path::PathBuf;

use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;

/// The field manager of every apply: `kubectl get -o yaml --show-managed-fields` says who wrote what.
pub const FIELD_MANAGER: &str = "kubectl-azlog";

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The namespace; default the context's, else `default`.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file; default $KUBECONFIG, else ~/.kube/config.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// A client for the chosen context and the namespace to work in.
pub async fn connect(target: &Target) -> Result<(Client, String), Failure> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &target.kubeconfig {
        // KUBECONFIG may list several files; kubectl merges them, and so does kube's reader.
        Some(path) if !path.as_os_str().is_empty() => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                Failure(format!(
                    "cannot read the kubeconfig {}: {e}",
                    path.display()
                ))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        _ => Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| {
        Failure(format!(
            "cannot load the kubeconfig: {e}; set KUBECONFIG or --kubeconfig, and --context"
        ))
    })?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        Client::try_from(config).map_err(|e| Failure(format!("cannot set up the client: {e}")))?;
    Ok((client, namespace))
}

/// Server-side applies `object` (which carries its apiVersion and kind) under the plugin's name.
pub async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K, Failure>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| Failure(explain(&e, &format!("apply {name}"))))
}

/// An API error in kubectl's words, with the next step where one is obvious.
pub fn explain(error: &kube::Error, doing: &str) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => format!(
            "{doing}: not found ({}); check the name and the namespace (-n)",
            status.message
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "{doing}: forbidden ({}); ask the cluster admin for the right, or choose another namespace",
            status.message
        ),
        kube::Error::Api(status) => format!("{doing}: {} ({})", status.message, status.reason),
        other => {
            format!("{doing}: {other}; is the cluster reachable with this kubeconfig and context?")
        }
    }
}

/// `object` as YAML, for `--dry-run`: what `kubectl apply -f -` takes.
pub fn yaml<T: Serialize>(object: &T) -> Result<String, Failure> {
    Ok(format!("---\n{}", serde_yaml::to_string(object)?))
}
