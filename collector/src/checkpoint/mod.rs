//! Where delivered progress is remembered.
//!
//! A checkpoint holds the source cursor just past the last batch every output delivered, and the
//! recent event ids that let a restart hide what it re-reads. It is only ever written after delivery,
//! so it can lag behind what outputs have seen but never run ahead of it.

use std::future::Future;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

mod configmap;

pub use configmap::ConfigMapStore;
use serde::{Deserialize, Serialize};

/// The format version written today. Older versions are migrated on load; newer ones refused.
pub const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub version: u32,
    /// The source type that wrote it; a different source must not reuse its cursor.
    pub source: String,
    pub cursor: serde_json::Value,
    /// Seed of the id hash; fixed for the life of the checkpoint.
    pub id_seed: u64,
    /// Recent id hashes, oldest first, as 32 hex digits each, concatenated.
    pub recent_ids: String,
    pub committed_at: DateTime<Utc>,
    pub events_delivered: u64,
    #[serde(default)]
    pub last_event_time: Option<DateTime<Utc>>,
}

impl Checkpoint {
    pub fn encode_ids(hashes: impl Iterator<Item = u128>) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Vec::with_capacity(hashes.size_hint().0 * 32);
        // A fixed buffer per id keeps the loop free of capacity checks: every commit encodes up to
        // dedupCapacity ids, so this is on the hot path of a backlog.
        for hash in hashes {
            let mut digits = [0u8; 32];
            for (pair, byte) in digits.chunks_exact_mut(2).zip(hash.to_be_bytes()) {
                pair[0] = HEX[usize::from(byte >> 4)];
                pair[1] = HEX[usize::from(byte & 0xf)];
            }
            out.extend_from_slice(&digits);
        }
        // Only ASCII hex digits were pushed.
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn decode_ids(&self) -> Result<Vec<u128>, CheckpointError> {
        let text = self.recent_ids.as_bytes();
        if !text.len().is_multiple_of(32) {
            return Err(CheckpointError::Corrupt(
                "recentIds length is not a multiple of 32".into(),
            ));
        }
        text.chunks(32)
            .map(|chunk| {
                std::str::from_utf8(chunk)
                    .ok()
                    .and_then(|s| u128::from_str_radix(s, 16).ok())
                    .ok_or_else(|| CheckpointError::Corrupt("recentIds holds a non-hex id".into()))
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("failed to read checkpoint {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to parse checkpoint: {0}; move the file aside to start from the configured startAt"
    )]
    Corrupt(String),
    #[error(
        "checkpoint version {found} is newer than this collector understands ({CHECKPOINT_VERSION}); upgrade the collector"
    )]
    TooNew { found: u32 },
    #[error("{0}")]
    Kubernetes(String),
}

impl CheckpointError {
    pub fn category(&self) -> &'static str {
        match self {
            CheckpointError::Read { .. } => "read",
            CheckpointError::Write { .. } => "write",
            CheckpointError::Corrupt(_) => "corrupt",
            CheckpointError::TooNew { .. } => "too_new",
            CheckpointError::Kubernetes(_) => "kubernetes",
        }
    }
}

pub trait CheckpointStore: Send + 'static {
    fn load(&self) -> impl Future<Output = Result<Option<Checkpoint>, CheckpointError>> + Send;
    fn commit(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;
    /// Called once after the last commit, before the collector exits.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A JSON file replaced atomically: written to a temporary file, fsynced, renamed over the old one,
/// and the directory fsynced so the rename itself survives a power cut.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: PathBuf) -> Self {
        FileStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_sync(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        parse(&text, &path.display().to_string()).map(Some)
    }

    fn commit_sync(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let write_err = |source| CheckpointError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let tmp = path.with_extension("json.tmp");
        // Streamed into the file: the id list is megabytes, and a copy of it would be a memory spike
        // at every commit.
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(write_err)?);
        serde_json::to_writer(&mut file, checkpoint)
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        let file = file.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)?;
        crate::fsutil::sync_dir(dir).map_err(write_err)
    }
}

/// The store a collector was configured with.
#[derive(Debug)]
pub enum Store {
    File(FileStore),
    ConfigMap(Box<ConfigMapStore>),
}

impl Store {
    /// Where checkpoints go, for the log.
    pub fn describe(&self) -> String {
        match self {
            Store::File(s) => s.path().display().to_string(),
            Store::ConfigMap(s) => s.describe(),
        }
    }
}

impl CheckpointStore for Store {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match self {
            Store::File(s) => s.load().await,
            Store::ConfigMap(s) => s.load().await,
        }
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        match self {
            Store::File(s) => s.commit(checkpoint).await,
            Store::ConfigMap(s) => s.commit(checkpoint).await,
        }
    }

    async fn finish(&mut self) {
        if let Store::ConfigMap(s) = self {
            s.finish().await;
        }
    }
}

/// Reads a checkpoint written by this or an older collector; `origin` names it in errors.
fn parse(text: &str, origin: &str) -> Result<Checkpoint, CheckpointError> {
    let version = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| CheckpointError::Corrupt(format!("{origin}: {e}")))?
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| CheckpointError::Corrupt(format!("{origin}: no version")))?;
    if version > u64::from(CHECKPOINT_VERSION) {
        return Err(CheckpointError::TooNew {
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_str(text).map_err(|e| CheckpointError::Corrupt(format!("{origin}: {e}")))
}

impl CheckpointStore for FileStore {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.path.clone();
        crate::fsutil::blocking(move || FileStore::load_sync(&path))
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let path = &self.path;
        crate::fsutil::blocking(|| FileStore::commit_sync(path, checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            source: "simulate".into(),
            cursor: serde_json::json!({"next": 42}),
            id_seed: 9,
            recent_ids: Checkpoint::encode_ids([1u128, u128::MAX].into_iter()),
            committed_at: Utc::now(),
            events_delivered: 42,
            last_event_time: None,
        }
    }

    #[tokio::test]
    async fn a_committed_checkpoint_loads_back_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = FileStore::new(dir.path().join("state/checkpoint.json"));
        assert_eq!(store.load().await.expect("load"), None);
        let checkpoint = sample();
        store.commit(&checkpoint).await.expect("commit");
        let loaded = store.load().await.expect("load").expect("present");
        assert_eq!(loaded, checkpoint);
        assert_eq!(loaded.decode_ids().expect("ids"), vec![1, u128::MAX]);
        assert!(!dir.path().join("state/checkpoint.json.tmp").exists());
    }

    #[tokio::test]
    async fn a_newer_version_is_refused_not_misread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.json");
        std::fs::write(&path, r#"{"version": 99}"#).expect("write");
        let err = FileStore::new(path).load().await.expect_err("refused");
        assert!(
            matches!(err, CheckpointError::TooNew { found: 99 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_file_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.json");
        std::fs::write(&path, "{not json").expect("write");
        let err = FileStore::new(path).load().await.expect_err("refused");
        assert!(err.to_string().contains("move the file aside"), "{err}");
    }
}
