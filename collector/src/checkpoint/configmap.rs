//! A checkpoint kept in a Kubernetes ConfigMap, so the collector pod is stateless: rescheduled
//! anywhere, it resumes where the last one committed. Each commit's progress is handed to the
//! status reporter ([`crate::status`]), which shows it on the LogSource.
//!
//! The ConfigMap is created by the operator (owned by the LogSource, so it goes with it); the
//! collector only reads and updates that one object, which is all its Role allows.
//!
//! What goes to the API server stays small whatever the event rate: the ConfigMap holds the
//! cursor and counters (well under a KiB), written at most every `commitInterval` while events
//! flow and once a minute when idle. The recent ids, which grow with the rate (16 bytes per event
//! that may be read again), go to an [`IdsLog`] in the state directory: appended to, on the pod's
//! volume. etcd keeps every revision of an object until compaction, so ids in the ConfigMap would
//! cost the whole set at every commit (up to 1 MiB every 5 s per LogSource). The price: a pod
//! replaced with its volume (an emptyDir) forgets the ids, and what the source reads again after
//! that may be delivered twice; a restart of the collector in the same pod keeps them, and so does
//! a state volume that outlives the pod (`spec.collector.stateVolume`).
//!
//! One writer: the collector first takes the checkpoint's Lease (when the config names one), so a
//! second collector waits instead of delivering the same events. Every update carries the
//! resourceVersion this collector last read or wrote; a 409 means someone else wrote it, and the
//! collector stops rather than re-read and overwrite (which would let two collectors take turns
//! regressing each other's cursor).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

use super::{Beside, Checkpoint, CheckpointError, CheckpointStore};
use crate::config::KubernetesCheckpointConfig;
use crate::metrics::Metrics;
use crate::status::{self, Progress};

const CHECKPOINT_KEY: &str = "checkpoint.json";
/// Where collectors before the ids moved to the state directory kept them: read once, then removed.
const LEGACY_IDS_KEY: &str = "recent-ids";
/// A commit that only moves the cursor (polls that found nothing) is written at most this often:
/// an idle source polls every few seconds, and a restart from the older cursor reads the same
/// empty windows again, which costs nothing.
const IDLE_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the checkpoint's Lease holds without a renewal, and how often it is renewed: an idle
/// collector writes it once a minute, and a renewal has 30 s to get through. A collector that stops
/// gives it up at once, and one restarted in the same pod takes its own back at once; only a holder
/// that vanished (its node lost, its pod deleted with `--force`) makes the next wait this long.
const CHECKPOINT_LEASE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(90),
    std::time::Duration::from_secs(60),
);

/// How long a stopping collector waits for its last status report.
const FINAL_REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct ConfigMapStore {
    config_maps: Api<ConfigMap>,
    name: String,
    /// The object as last read or written, whose resourceVersion the next update carries.
    current: Mutex<Option<ConfigMap>>,
    /// Set when the Lease was lost or another writer's update was found: why this collector
    /// may write no more.
    lost: Arc<Mutex<Option<String>>>,
    /// The Lease and its renewing task, stopped and released with the store.
    lease: Option<(crate::lease::LeaseLock, tokio::task::JoinHandle<()>)>,
    /// To the status reporter, when a LogSource is named, and its task.
    reporter: Option<(
        tokio::sync::watch::Sender<Option<Progress>>,
        tokio::task::JoinHandle<()>,
    )>,
    /// Events delivered as of the last write, and when it was.
    last_write: Option<(u64, Instant)>,
    /// Where the recent ids and offsets are kept: the state directory.
    state_dir: std::path::PathBuf,
    /// The files of the checkpoint with the seed they are named by.
    local: Mutex<Option<LocalState>>,
    metrics: Arc<Metrics>,
}

/// What a checkpoint keeps in the state directory, in files named by its seed: a checkpoint
/// started over (a new seed) never reads another's.
#[derive(Debug)]
struct LocalState {
    seed: u64,
    beside: Beside,
}

impl LocalState {
    fn new(state_dir: &std::path::Path, seed: u64) -> LocalState {
        LocalState {
            seed,
            beside: Beside::new(
                state_dir.join(format!("recent-ids-{seed:016x}")),
                state_dir.join(format!("offsets-{seed:016x}")),
            ),
        }
    }
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConfigMapStore {
    /// Connects with the pod's service account, or `$KUBECONFIG` outside a cluster, and starts the
    /// status reporter when the config names a LogSource.
    pub async fn connect(
        config: &KubernetesCheckpointConfig,
        state_dir: &std::path::Path,
        metrics: Arc<Metrics>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Self, CheckpointError> {
        let client = match std::env::var_os(SANDBOX_ROOT) {
            Some(root) => host_process_config(std::path::Path::new(&root))
                .and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string())),
            None => kube::Client::try_default().await.map_err(|e| e.to_string()),
        }
        .map_err(|e| CheckpointError::Kubernetes(format!("failed to connect: {e}")))?;
        let lost = Arc::new(Mutex::new(None));
        let lease = match &config.lease {
            Some(lease) => {
                Some(hold_lease(&client, config, lease, &metrics, lost.clone(), shutdown).await?)
            }
            None => None,
        };
        let reporter = config.log_source.clone().map(|name| {
            status::spawn(
                &client,
                &config.namespace,
                name,
                config.status_interval,
                metrics.clone(),
            )
        });
        Ok(ConfigMapStore {
            config_maps: Api::namespaced(client, &config.namespace),
            name: config.config_map.clone(),
            current: Mutex::new(None),
            lost,
            lease,
            reporter,
            last_write: None,
            state_dir: state_dir.to_owned(),
            local: Mutex::new(None),
            metrics,
        })
    }

    /// Writes what the checkpoint keeps in the state directory.
    fn write_local(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let mut local = super::lock(&self.local);
        if local.as_ref().is_none_or(|l| l.seed != checkpoint.id_seed) {
            *local = Some(LocalState::new(&self.state_dir, checkpoint.id_seed));
        }
        let Some(local) = local.as_mut() else {
            return Ok(());
        };
        crate::fsutil::blocking(|| local.beside.write(checkpoint))
    }

    /// Puts what the checkpoint keeps in the state directory into it: the offsets, and the recent
    /// ids, or those the ConfigMap kept where an older collector put them. When neither has the
    /// ids (the pod was replaced and its volume with it), what the source reads again may be
    /// delivered twice: said in the log and counted in `azlog_checkpoint_ids_lost_total`.
    fn restore_local(&self, checkpoint: &mut Checkpoint) -> Result<(), CheckpointError> {
        let mut local = LocalState::new(&self.state_dir, checkpoint.id_seed);
        let (ids, offsets) = crate::fsutil::blocking(|| local.beside.read())?;
        checkpoint.offsets = offsets;
        *super::lock(&self.local) = Some(local);
        match ids {
            Some(ids) => checkpoint.recent_ids = ids,
            None if !checkpoint.recent_ids.is_empty() => {
                tracing::info!(
                    ids = checkpoint.recent_ids.len() / super::ID_BYTES,
                    "moving the recent ids from the checkpoint ConfigMap to the state directory"
                );
            }
            None if checkpoint.events_delivered > 0 => {
                self.metrics.checkpoint_ids_lost.inc();
                tracing::warn!(
                    state_dir = %self.state_dir.display(),
                    "the recent ids are not in the state directory (a new pod with a new volume): events the source reads again from the checkpoint may be delivered twice; give the collector a state volume that outlives the pod to keep them"
                );
            }
            None => {}
        }
        Ok(())
    }

    /// Why this collector may no longer write the checkpoint, if it may not.
    pub fn ownership_lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|lost| lost.clone())
    }

    pub fn describe(&self) -> String {
        format!("ConfigMap {}", self.name)
    }

    fn error(&self, action: &str, e: kube::Error) -> CheckpointError {
        let hint = match &e {
            kube::Error::Api(s) if s.code == 403 => {
                "; the collector's Role must allow get and update on it"
            }
            kube::Error::Api(s) if s.code == 404 => "; the operator creates it with the LogSource",
            kube::Error::Api(s) if s.code == 409 => {
                "; another collector wrote it: only one may write a checkpoint"
            }
            _ => "",
        };
        CheckpointError::Kubernetes(format!(
            "failed to {action} ConfigMap {}: {e}{hint}",
            self.name
        ))
    }
}

/// Waits until this collector holds the checkpoint's Lease (or `shutdown`), saying so in
/// `/readyz` meanwhile, then keeps renewing it; when it is lost, `lost` says why.
async fn hold_lease(
    client: &kube::Client,
    config: &KubernetesCheckpointConfig,
    name: &str,
    metrics: &Arc<Metrics>,
    lost: Arc<Mutex<Option<String>>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(crate::lease::LeaseLock, tokio::task::JoinHandle<()>), CheckpointError> {
    let identity = crate::lease::identity("azlog-collector");
    let lock = crate::lease::LeaseLock::new(client.clone(), &config.namespace, name, &identity)
        .with_timing(CHECKPOINT_LEASE.0, CHECKPOINT_LEASE.1);
    // /readyz tells a standby collector from a working one until the Lease is ours.
    metrics.set_checkpoint_error(Some(format!(
        "standby: waiting for Lease {name}; while another collector holds it, that one writes the checkpoint and this one takes over if it stops"
    )));
    tokio::select! {
        () = lock.acquire() => {}
        _ = shutdown.wait_for(|stop| *stop) => {
            return Err(CheckpointError::Kubernetes(format!("stopped while waiting for Lease {name}")));
        }
    }
    metrics.set_checkpoint_error(None);
    let name = name.to_owned();
    let renewing = lock.clone();
    let task = tokio::spawn(async move {
        renewing.hold().await;
        if let Ok(mut lost) = lost.lock() {
            *lost = Some(format!("this collector lost Lease {name} to another"));
        }
    });
    Ok((lock, task))
}

impl CheckpointStore for ConfigMapStore {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let object = self
            .config_maps
            .get(&self.name)
            .await
            .map_err(|e| self.error("read", e))?;
        let mut checkpoint = decode(&object)?;
        if let Some(checkpoint) = &mut checkpoint {
            self.restore_local(checkpoint)?;
        }
        // The first update carries this version: a write by anyone else since fails it.
        if let Ok(mut current) = self.current.lock() {
            *current = Some(object);
        }
        Ok(checkpoint)
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let idle = self.last_write.is_some_and(|(events, at)| {
            events == checkpoint.events_delivered && at.elapsed() < IDLE_WRITE_INTERVAL
        });
        if idle {
            return Ok(());
        }
        if let Some(why) = self.ownership_lost() {
            return Err(CheckpointError::Lost(why));
        }
        let stored = self.current.lock().ok().and_then(|mut c| c.take());
        let mut object = match stored {
            Some(object) => object,
            None => self
                .config_maps
                .get(&self.name)
                .await
                .map_err(|e| self.error("read", e))?,
        };
        // The ids and offsets first: a crash before the cursor is written leaves ids and offsets
        // of delivered events beside an older cursor, which then recognises or skips more of what
        // it reads again.
        self.write_local(checkpoint)?;
        let text = encode(checkpoint)?;
        object
            .data
            .get_or_insert_with(BTreeMap::new)
            .insert(CHECKPOINT_KEY.into(), text);
        if let Some(legacy) = &mut object.binary_data {
            legacy.remove(LEGACY_IDS_KEY);
        }
        let written = match self
            .config_maps
            .replace(&self.name, &PostParams::default(), &object)
            .await
        {
            Ok(written) => written,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let why = format!(
                    "another collector wrote ConfigMap {} since this one last read it",
                    self.name
                );
                if let Ok(mut lost) = self.lost.lock() {
                    *lost = Some(why.clone());
                }
                return Err(CheckpointError::Lost(why));
            }
            Err(e) => {
                // Not a conflict: the next commit reads the object again.
                return Err(self.error("update", e));
            }
        };
        if let Ok(mut current) = self.current.lock() {
            *current = Some(written);
        }
        self.last_write = Some((checkpoint.events_delivered, Instant::now()));
        if let Some((progress, _)) = &self.reporter {
            progress.send_replace(Some(Progress {
                last_event_time: checkpoint.last_event_time,
                events_delivered: checkpoint.events_delivered,
                dead_lettered: checkpoint.dead_lettered,
                dedup_forgotten_early: self.metrics.dedup_forgotten_early.get(),
                committed_at: checkpoint.committed_at,
            }));
        }
        Ok(())
    }

    async fn finish(&mut self) {
        if let Some((lock, renewing)) = self.lease.take() {
            renewing.abort();
            // Only a collector that still owns the checkpoint gives it up.
            if self.ownership_lost().is_none() {
                lock.release().await;
            }
        }
        if let Some((progress, task)) = self.reporter.take() {
            drop(progress);
            // The last report is worth a moment at shutdown, not a hang.
            if tokio::time::timeout(FINAL_REPORT_TIMEOUT, task)
                .await
                .is_err()
            {
                tracing::warn!("the last status report did not finish in time");
            }
        }
    }

    fn ownership_lost(&self) -> Option<String> {
        ConfigMapStore::ownership_lost(self)
    }
}

/// Set in a Windows HostProcess container: the directory its volumes, and the service account
/// token, are mounted below. The in-cluster defaults look for the token at the root instead.
const SANDBOX_ROOT: &str = "CONTAINER_SANDBOX_MOUNT_POINT";

/// The in-cluster client config of a HostProcess container whose sandbox is mounted at `root`.
fn host_process_config(root: &std::path::Path) -> Result<kube::Config, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let (host, port) = (
        var("KUBERNETES_SERVICE_HOST")?,
        var("KUBERNETES_SERVICE_PORT")?,
    );
    let account = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    let ca = account.join("ca.crt");
    let certs = CertificateDer::pem_file_iter(&ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{port}")
        .parse()
        .map_err(|e| format!("bad API server address {host}:{port}: {e}"))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(certs.into_iter().map(|c| c.to_vec()).collect());
    config.auth_info.token_file = Some(account.join("token").display().to_string());
    Ok(config)
}

/// The checkpoint as JSON, without its ids.
fn encode(checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
    serde_json::to_string(checkpoint).map_err(|e| CheckpointError::Corrupt(e.to_string()))
}

fn decode(object: &ConfigMap) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(text) = object.data.as_ref().and_then(|d| d.get(CHECKPOINT_KEY)) else {
        return Ok(None);
    };
    let ids = object
        .binary_data
        .as_ref()
        .and_then(|d| d.get(LEGACY_IDS_KEY))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    super::parse(text, ids, "the checkpoint ConfigMap").map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn a_host_process_container_finds_its_token_and_ca_below_the_sandbox() {
        let root = tempfile::tempdir().expect("tempdir");
        let account = root
            .path()
            .join("var/run/secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(&account).expect("mkdir");
        std::fs::write(account.join("token"), "t").expect("token");
        // Any certificate will do.
        let pem = rcgen::generate_simple_self_signed(vec!["kubernetes".into()])
            .expect("certificate")
            .cert
            .pem();
        std::fs::write(account.join("ca.crt"), pem).expect("ca");
        // SAFETY: no other test of this process reads these variables.
        unsafe {
            std::env::set_var("KUBERNETES_SERVICE_HOST", "10.0.0.1");
            std::env::set_var("KUBERNETES_SERVICE_PORT", "443");
        }
        let config = host_process_config(root.path()).expect("config");
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:443/");
        assert_eq!(config.root_cert.map(|c| c.len()), Some(1));
        assert_eq!(
            config.auth_info.token_file.as_deref(),
            Some(account.join("token").display().to_string().as_str())
        );
        std::fs::remove_file(account.join("ca.crt")).expect("rm");
        let err = host_process_config(root.path()).expect_err("no CA");
        assert!(err.contains("ca.crt"), "{err}");
    }

    #[test]
    fn a_checkpoint_survives_the_configmap_encoding() {
        let checkpoint = Checkpoint {
            version: super::super::CHECKPOINT_VERSION,
            source: "wad".into(),
            cursor: serde_json::json!({"from": "2026-11-22T00:00:00Z"}),
            id_seed: 7,
            recent_ids: Checkpoint::encode_ids([1u128, u128::MAX, 42].into_iter()),
            committed_at: chrono::Utc::now(),
            events_delivered: 3,
            last_event_time: None,
            dead_lettered: 0,
            offsets: BTreeMap::new(),
        };
        let text = encode(&checkpoint).expect("encode");
        assert!(!text.contains("recentIds"), "{text}");
        // As an older collector wrote it, with the ids beside the JSON.
        let object = ConfigMap {
            data: Some(BTreeMap::from([(CHECKPOINT_KEY.to_owned(), text)])),
            binary_data: Some(BTreeMap::from([(
                LEGACY_IDS_KEY.to_owned(),
                ByteString(checkpoint.recent_ids.clone()),
            )])),
            ..ConfigMap::default()
        };
        assert_eq!(decode(&object).expect("decode"), Some(checkpoint));
        assert_eq!(decode(&ConfigMap::default()).expect("empty"), None);
    }
}
