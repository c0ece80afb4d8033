//! A checkpoint kept in a Kubernetes ConfigMap, so the collector pod is stateless: rescheduled
//! anywhere, it resumes where the last one committed. Progress is also reported to the LogSource's
//! status, at most every `statusInterval`, so `kubectl get logsources` shows it without the API
//! server being hammered.
//!
//! The ConfigMap is created by the operator (owned by the LogSource, so it goes with it); the
//! collector only reads and updates that one object, which is all its Role allows. Every update
//! carries the resourceVersion last read: a second collector writing the same checkpoint makes
//! the update fail instead of silently interleaving two cursors.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;

use super::{Checkpoint, CheckpointError, CheckpointStore};
use crate::config::KubernetesCheckpointConfig;

const CHECKPOINT_KEY: &str = "checkpoint.json";
/// Recent id hashes, 16 bytes each, oldest first.
const IDS_KEY: &str = "recent-ids";
/// A commit that only moves the cursor (polls that found nothing) is written at most this often.
/// The ConfigMap is rewritten whole, up to 800 KB of ids, and an idle source polls every few
/// seconds; a restart from the older cursor reads the same empty windows again, which costs nothing.
const IDLE_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct ConfigMapStore {
    config_maps: Api<ConfigMap>,
    name: String,
    /// The object as last read or written, whose resourceVersion the next update carries.
    current: Option<ConfigMap>,
    status: Option<(Api<DynamicObject>, String)>,
    status_interval: std::time::Duration,
    last_status: Option<Instant>,
    /// Events delivered as of the last write, and when it was.
    last_write: Option<(u64, Instant)>,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConfigMapStore {
    /// Connects with the pod's service account, or `$KUBECONFIG` outside a cluster.
    pub async fn connect(config: &KubernetesCheckpointConfig) -> Result<Self, CheckpointError> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| CheckpointError::Kubernetes(format!("failed to connect: {e}")))?;
        let status = config.log_source.clone().map(|name| {
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("azlog.io", "v1alpha1", "LogSource"),
                "logsources",
            );
            (
                Api::namespaced_with(client.clone(), &config.namespace, &resource),
                name,
            )
        });
        Ok(ConfigMapStore {
            config_maps: Api::namespaced(client, &config.namespace),
            name: config.config_map.clone(),
            current: None,
            status,
            status_interval: config.status_interval,
            last_status: None,
            last_write: None,
        })
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
                "; another collector wrote it: only one may run per LogSource"
            }
            _ => "",
        };
        CheckpointError::Kubernetes(format!(
            "failed to {action} ConfigMap {}: {e}{hint}",
            self.name
        ))
    }

    /// Reports progress to the LogSource status when `statusInterval` has passed. A failure is
    /// logged: the status is for people, the checkpoint is what matters.
    async fn report(&mut self, checkpoint: &Checkpoint) {
        let Some((api, name)) = &self.status else {
            return;
        };
        if self
            .last_status
            .is_some_and(|at| at.elapsed() < self.status_interval)
        {
            return;
        }
        let lag = checkpoint
            .last_event_time
            .map(|t| (chrono::Utc::now() - t).num_seconds().max(0));
        let patch = serde_json::json!({"status": {
            "lastEventTime": checkpoint.last_event_time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "lagSeconds": lag,
            "eventsDelivered": checkpoint.events_delivered,
            "checkpoint": checkpoint.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => self.last_status = Some(Instant::now()),
            Err(e) => {
                tracing::warn!(logsource = %name, error = %e, "failed to report progress to the LogSource status")
            }
        }
    }
}

impl CheckpointStore for ConfigMapStore {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        // `load` takes &self; the object read is kept by the first commit's own read instead.
        let object = self
            .config_maps
            .get(&self.name)
            .await
            .map_err(|e| self.error("read", e))?;
        decode(&object)
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let idle = self.last_write.is_some_and(|(events, at)| {
            events == checkpoint.events_delivered && at.elapsed() < IDLE_WRITE_INTERVAL
        });
        if idle {
            return Ok(());
        }
        let mut object = match self.current.take() {
            Some(object) => object,
            None => self
                .config_maps
                .get(&self.name)
                .await
                .map_err(|e| self.error("read", e))?,
        };
        let (text, ids) = encode(checkpoint)?;
        object
            .data
            .get_or_insert_with(BTreeMap::new)
            .insert(CHECKPOINT_KEY.into(), text);
        object
            .binary_data
            .get_or_insert_with(BTreeMap::new)
            .insert(IDS_KEY.into(), ByteString(ids));
        let written = self
            .config_maps
            .replace(&self.name, &PostParams::default(), &object)
            .await
            .map_err(|e| self.error("update", e))?;
        self.current = Some(written);
        self.last_write = Some((checkpoint.events_delivered, Instant::now()));
        self.report(checkpoint).await;
        Ok(())
    }
}

/// The checkpoint as JSON without its ids, and the ids as 16 bytes each (half the size of hex).
fn encode(checkpoint: &Checkpoint) -> Result<(String, Vec<u8>), CheckpointError> {
    let ids = checkpoint
        .decode_ids()?
        .into_iter()
        .flat_map(u128::to_be_bytes)
        .collect();
    let text = serde_json::to_string(&Checkpoint {
        recent_ids: String::new(),
        ..checkpoint.clone()
    })
    .map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
    Ok((text, ids))
}

fn decode(object: &ConfigMap) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(text) = object.data.as_ref().and_then(|d| d.get(CHECKPOINT_KEY)) else {
        return Ok(None);
    };
    let mut checkpoint = super::parse(text, "the checkpoint ConfigMap")?;
    let ids = object
        .binary_data
        .as_ref()
        .and_then(|d| d.get(IDS_KEY))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    if !ids.len().is_multiple_of(16) {
        return Err(CheckpointError::Corrupt(format!(
            "{IDS_KEY} is {} bytes, not a multiple of 16",
            ids.len()
        )));
    }
    checkpoint.recent_ids = Checkpoint::encode_ids(
        ids.chunks_exact(16)
            .map(|c| u128::from_be_bytes(c.try_into().unwrap_or_default())),
    );
    Ok(Some(checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let (text, ids) = encode(&checkpoint).expect("encode");
        assert_eq!(ids.len(), 48);
        assert!(!text.contains(&checkpoint.recent_ids));
        let object = ConfigMap {
            data: Some(BTreeMap::from([(CHECKPOINT_KEY.to_owned(), text)])),
            binary_data: Some(BTreeMap::from([(IDS_KEY.to_owned(), ByteString(ids))])),
            ..ConfigMap::default()
        };
        assert_eq!(decode(&object).expect("decode"), Some(checkpoint));
        assert_eq!(decode(&ConfigMap::default()).expect("empty"), None);
    }
}
