//! Where delivered progress is remembered.
//!
//! A checkpoint holds the source cursor just past the last batch every output delivered, and the
//! recent event ids that let a restart hide what it re-reads. It is only ever written after delivery,
//! so it can lag behind what outputs have seen but never run ahead of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

mod configmap;

pub use configmap::ConfigMapStore;
use serde::{Deserialize, Serialize};

/// The format version written today. Older versions are migrated on load; newer ones refused.
/// Version 1 kept the recent ids as hex digits inside the JSON; version 2 keeps them as raw bytes
/// beside it (`checkpoint.ids`, or the ConfigMap's binaryData), half the size and nothing to encode
/// or escape at every commit.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Per-key positions kept beside a checkpoint (see [`Checkpoint::offsets`]); None forgets a key.
pub type Offsets = BTreeMap<String, Option<u64>>;

/// Bytes per remembered id: a 128-bit hash, big-endian.
pub const ID_BYTES: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub version: u32,
    /// The source type that wrote it; a different source must not reuse its cursor.
    pub source: String,
    pub cursor: serde_json::Value,
    /// Seed of the id hash; fixed for the life of the checkpoint.
    pub id_seed: u64,
    /// Recent id hashes, oldest first, [`ID_BYTES`] each. Stored beside the JSON, not in it.
    #[serde(skip)]
    pub recent_ids: Vec<u8>,
    pub committed_at: DateTime<Utc>,
    pub events_delivered: u64,
    #[serde(default)]
    pub last_event_time: Option<DateTime<Utc>>,
    /// Records written to the dead-letter file instead of delivered, over the checkpoint's life.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Per-key positions kept beside the cursor (a blob's byte offset), so the cursor stays small
    /// however many keys there are. Loaded: every key. Committed: the keys that changed since the
    /// last commit, None forgetting one. Stored beside the JSON, not in it.
    #[serde(skip)]
    pub offsets: Offsets,
}

impl Checkpoint {
    pub fn encode_ids(hashes: impl Iterator<Item = u128>) -> Vec<u8> {
        let mut out = Vec::with_capacity(hashes.size_hint().0 * ID_BYTES);
        for hash in hashes {
            out.extend_from_slice(&hash.to_be_bytes());
        }
        out
    }

    pub fn decode_ids(&self) -> Result<Vec<u128>, CheckpointError> {
        check_ids(&self.recent_ids)?;
        Ok(self
            .recent_ids
            .chunks_exact(ID_BYTES)
            .map(|c| u128::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }
}

/// Whether `bytes` can be a list of ids.
fn check_ids(bytes: &[u8]) -> Result<(), CheckpointError> {
    if bytes.len().is_multiple_of(ID_BYTES) {
        return Ok(());
    }
    Err(CheckpointError::Corrupt(format!(
        "the recent ids are {} bytes, not a multiple of {ID_BYTES}",
        bytes.len()
    )))
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
    #[error("{0}; this collector stops writing it and exits, and the other goes on")]
    Lost(String),
}

impl CheckpointError {
    pub fn category(&self) -> &'static str {
        match self {
            CheckpointError::Read { .. } => "read",
            CheckpointError::Write { .. } => "write",
            CheckpointError::Corrupt(_) => "corrupt",
            CheckpointError::TooNew { .. } => "too_new",
            CheckpointError::Kubernetes(_) => "kubernetes",
            CheckpointError::Lost(_) => "ownership_lost",
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
    /// Why this process may no longer write the checkpoint (another one owns it now); the
    /// pipeline then stops instead of delivering what that one delivers.
    fn ownership_lost(&self) -> Option<String> {
        None
    }
}

/// What a checkpoint keeps beside its JSON, in files of their own because they grow with the
/// traffic: the recent ids and the per-key offsets. Both stores write them before the JSON, so a
/// crash between leaves ids and offsets of delivered events beside an older cursor, which then
/// recognises or skips more of what it reads again, never less.
#[derive(Debug)]
pub struct Beside {
    ids: IdsLog,
    offsets: OffsetsLog,
}

impl Beside {
    pub fn new(ids: PathBuf, offsets: PathBuf) -> Self {
        Beside {
            ids: IdsLog::new(ids),
            offsets: OffsetsLog::new(offsets),
        }
    }

    /// The ids (None when there is no file) and the offsets, which the next write appends to.
    pub fn read(&mut self) -> Result<(Option<Vec<u8>>, Offsets), CheckpointError> {
        Ok((self.ids.read()?, self.offsets.read()?))
    }

    pub fn write(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.ids.write(&checkpoint.recent_ids)?;
        self.offsets.write(&checkpoint.offsets)
    }
}

/// A JSON file replaced atomically: written to a temporary file, fsynced, renamed over the old one,
/// and the directory fsynced so the rename itself survives a power cut. The ids and offsets are
/// [`Beside`] it.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    beside: std::sync::Mutex<Beside>,
}

impl FileStore {
    pub fn new(path: PathBuf) -> Self {
        // `checkpoint.ids` and `checkpoint.offsets` beside `checkpoint.json`.
        let beside = Beside::new(path.with_extension("ids"), path.with_extension("offsets"));
        FileStore {
            path,
            beside: std::sync::Mutex::new(beside),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_sync(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = &self.path;
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
        let (ids, offsets) = lock(&self.beside).read()?;
        let mut checkpoint = parse(&text, &ids.unwrap_or_default(), &path.display().to_string())?;
        checkpoint.offsets = offsets;
        Ok(Some(checkpoint))
    }

    /// Writes the ids and offsets, then the checkpoint, atomically replaced.
    fn commit_sync(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        lock(&self.beside).write(checkpoint)?;
        let json = serde_json::to_vec(checkpoint).map_err(|e| CheckpointError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        replace(&self.path, &json)
    }
}

/// The recent ids of a checkpoint in a file of their own, 16 bytes each, oldest first. Rewriting
/// them all at every commit would write them over and over (1.6 MB for 100,000 ids); instead the
/// ids delivered since the last commit are appended, and the file is rewritten to just the ids
/// remembered once it has grown to twice that.
#[derive(Debug)]
pub struct IdsLog {
    path: PathBuf,
    /// The file as this process last wrote it; until its first write, unknown.
    file: Option<IdsFile>,
}

/// What the ids file holds, as far as a commit needs to know to append to it.
#[derive(Debug, Clone, Copy)]
struct IdsFile {
    /// Its newest id: those after it in the next window are the ones to append.
    newest: [u8; ID_BYTES],
    /// How many ids it holds, older ones no longer remembered included.
    count: usize,
}

impl IdsLog {
    pub fn new(path: PathBuf) -> Self {
        IdsLog { path, file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids, or None when there is no file. Loading keeps the newest ids that fit the dedup
    /// window.
    pub fn read(&self) -> Result<Option<Vec<u8>>, CheckpointError> {
        let mut ids = match std::fs::read(&self.path) {
            Ok(ids) => ids,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        // A crash in the middle of an append leaves part of an id at the end. The cursor beside it
        // was written before that append, so dropping the part loses nothing the cursor passed.
        ids.truncate(ids.len() - ids.len() % ID_BYTES);
        Ok(Some(ids))
    }

    /// Brings the file up to `window`, the ids remembered now, oldest first.
    pub fn write(&mut self, window: &[u8]) -> Result<(), CheckpointError> {
        // After a failed write the file is in doubt: the next one rewrites it.
        let file = self.file.take();
        let write_err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let newest = |bytes: &[u8]| bytes.rchunks_exact(ID_BYTES).next()?.try_into().ok();
        let window_ids = window.len() / ID_BYTES;
        let appendable = file.and_then(|file| {
            // The window is the file's ids, minus some of the oldest, plus the new ones after its
            // newest. Ids in a window are distinct, so its newest is found at most once.
            let at = window
                .chunks_exact(ID_BYTES)
                .rposition(|id| id == file.newest)?;
            let new = &window[(at + 1) * ID_BYTES..];
            let count = file.count + new.len() / ID_BYTES;
            (count <= 2 * window_ids).then_some((new, count))
        });
        let count = match appendable {
            None => {
                replace(&self.path, window)?;
                window_ids
            }
            Some((new, count)) => {
                if !new.is_empty() {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&self.path)
                        .map_err(write_err)?;
                    std::io::Write::write_all(&mut f, new).map_err(write_err)?;
                    f.sync_data().map_err(write_err)?;
                }
                count
            }
        };
        self.file = newest(window).map(|newest| IdsFile { newest, count });
        Ok(())
    }
}

/// A lock that a panic elsewhere does not make unusable: the data it guards is rewritten whole
/// when in doubt.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A checkpoint's per-key offsets in a file of their own: one JSON line per change
/// (`["key",offset]`, or `["key",null]` to forget a key), appended at each commit, the last line
/// for a key winning; rewritten to just the live keys once it has grown to twice their size.
///
/// A forgotten key is written one commit late. Offsets are written before the cursor, and a key is
/// forgotten when the cursor moves past it (a blob's hour settled): were the forgetting written
/// with that move and the cursor write lost to a crash, the older cursor would read the blob
/// again from its start.
#[derive(Debug)]
pub struct OffsetsLog {
    path: PathBuf,
    live: BTreeMap<String, u64>,
    /// Bytes in the file, and in its lines for the live keys.
    file_bytes: u64,
    live_bytes: u64,
    /// Keys to forget at the next write.
    forget: Vec<String>,
}

impl OffsetsLog {
    pub fn new(path: PathBuf) -> Self {
        OffsetsLog {
            path,
            live: BTreeMap::new(),
            file_bytes: 0,
            live_bytes: 0,
            forget: Vec::new(),
        }
    }

    fn line(key: &str, offset: Option<u64>) -> String {
        let mut line = serde_json::json!([key, offset]).to_string();
        line.push('\n');
        line
    }

    fn line_len(key: &str, offset: u64) -> u64 {
        Self::line(key, Some(offset)).len() as u64
    }

    fn set(&mut self, key: &str, offset: Option<u64>) {
        let old = match offset {
            Some(offset) => {
                self.live_bytes += Self::line_len(key, offset);
                self.live.insert(key.to_owned(), offset)
            }
            None => self.live.remove(key),
        };
        if let Some(old) = old {
            self.live_bytes -= Self::line_len(key, old);
        }
    }

    /// Every key and its offset; none when there is no file. A line cut by a crash is left out:
    /// its offset was never committed.
    pub fn read(&mut self) -> Result<Offsets, CheckpointError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.live.clear();
        self.live_bytes = 0;
        let whole = text.len() - text.iter().rev().take_while(|b| **b != b'\n').count();
        for line in text[..whole]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let (key, offset): (String, Option<u64>) = serde_json::from_slice(line)
                .map_err(|e| CheckpointError::Corrupt(format!("{}: {e}", self.path.display())))?;
            self.set(&key, offset);
        }
        // After a torn line the next write rewrites the file instead of appending to the tear.
        self.file_bytes = if whole == text.len() { whole as u64 } else { 0 };
        Ok(self
            .live
            .iter()
            .map(|(k, v)| (k.clone(), Some(*v)))
            .collect())
    }

    /// Records `changes` (and the keys the previous write was told to forget).
    pub fn write(&mut self, changes: &Offsets) -> Result<(), CheckpointError> {
        let forget = std::mem::take(&mut self.forget);
        if changes.is_empty() && forget.is_empty() {
            return Ok(());
        }
        let mut appended = String::new();
        for key in forget {
            // Set again since it was forgotten: keep it.
            if changes.contains_key(&key) || !self.live.contains_key(&key) {
                continue;
            }
            self.set(&key, None);
            appended.push_str(&Self::line(&key, None));
        }
        for (key, offset) in changes {
            match offset {
                Some(offset) => {
                    self.set(key, Some(*offset));
                    appended.push_str(&Self::line(key, Some(*offset)));
                }
                None => self.forget.push(key.clone()),
            }
        }
        // A new file is written whole, so its directory entry is made durable too.
        if self.file_bytes == 0
            || self.file_bytes + appended.len() as u64 > 2 * self.live_bytes + 65536
        {
            let whole: String = self
                .live
                .iter()
                .map(|(k, v)| Self::line(k, Some(*v)))
                .collect();
            replace(&self.path, whole.as_bytes())?;
            self.file_bytes = whole.len() as u64;
        } else if !appended.is_empty() {
            let write_err = |source| CheckpointError::Write {
                path: self.path.clone(),
                source,
            };
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(write_err)?;
            std::io::Write::write_all(&mut f, appended.as_bytes()).map_err(write_err)?;
            f.sync_data().map_err(write_err)?;
            self.file_bytes += appended.len() as u64;
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes`: written to a temporary file, fsynced, renamed over it, and the
/// directory fsynced so the rename itself survives a power cut. Creates the directory if needed.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let write_err = |source| CheckpointError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
    std::io::Write::write_all(&mut file, bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    crate::fsutil::sync_dir(dir).map_err(write_err)
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

    fn ownership_lost(&self) -> Option<String> {
        match self {
            Store::File(_) => None,
            Store::ConfigMap(s) => s.ownership_lost(),
        }
    }
}

/// Reads a checkpoint written by this or an older collector from its JSON and the ids stored beside
/// it; `origin` names it in errors.
fn parse(json: &str, ids: &[u8], origin: &str) -> Result<Checkpoint, CheckpointError> {
    let corrupt = |e: serde_json::Error| CheckpointError::Corrupt(format!("{origin}: {e}"));
    let value: serde_json::Value = serde_json::from_str(json).map_err(corrupt)?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| CheckpointError::Corrupt(format!("{origin}: no version")))?;
    if version > u64::from(CHECKPOINT_VERSION) {
        return Err(CheckpointError::TooNew {
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    let legacy_hex = (version == 1)
        .then(|| value.get("recentIds").and_then(serde_json::Value::as_str))
        .flatten()
        .map(str::to_owned);
    let mut checkpoint: Checkpoint = serde_json::from_value(value).map_err(corrupt)?;
    checkpoint.recent_ids = match legacy_hex {
        Some(hex) => ids_from_hex(&hex)?,
        None => {
            check_ids(ids)?;
            ids.to_vec()
        }
    };
    checkpoint.version = CHECKPOINT_VERSION;
    Ok(checkpoint)
}

/// Version 1's ids: 32 hex digits each.
fn ids_from_hex(hex: &str) -> Result<Vec<u8>, CheckpointError> {
    if !hex.len().is_multiple_of(2 * ID_BYTES) {
        return Err(CheckpointError::Corrupt(
            "recentIds length is not a multiple of 32".into(),
        ));
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| CheckpointError::Corrupt("recentIds holds a non-hex id".into()))
        })
        .collect()
}

impl CheckpointStore for FileStore {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        crate::fsutil::blocking(|| self.load_sync())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        crate::fsutil::blocking(|| self.commit_sync(checkpoint))
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
            dead_lettered: 0,
            offsets: BTreeMap::new(),
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
        assert_eq!(
            std::fs::read(dir.path().join("state/checkpoint.ids"))
                .expect("ids")
                .len(),
            32
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("state/checkpoint.json")).expect("json"),
        )
        .expect("checkpoint.json stays plain JSON");
        assert_eq!(json["eventsDelivered"], 42);
    }

    #[tokio::test]
    async fn a_version_1_checkpoint_with_hex_ids_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"version":1,"source":"wad","cursor":{{"from":"x"}},"idSeed":9,"recentIds":"{:032x}{:032x}","committedAt":"2026-11-22T00:00:00Z","eventsDelivered":2}}"#,
                1u128,
                u128::MAX
            ),
        )
        .expect("write");
        let loaded = FileStore::new(path)
            .load()
            .await
            .expect("load")
            .expect("present");
        assert_eq!(loaded.decode_ids().expect("ids"), vec![1, u128::MAX]);
        assert_eq!(
            (loaded.version, loaded.id_seed, loaded.events_delivered),
            (CHECKPOINT_VERSION, 9, 2)
        );
    }

    fn with_ids(ids: impl IntoIterator<Item = u128>) -> Checkpoint {
        Checkpoint {
            recent_ids: Checkpoint::encode_ids(ids.into_iter()),
            ..sample()
        }
    }

    fn stored_ids(dir: &Path) -> Vec<u128> {
        let bytes = std::fs::read(dir.join("checkpoint.ids")).expect("ids");
        assert_eq!(bytes.len() % ID_BYTES, 0, "whole ids only");
        bytes
            .chunks_exact(ID_BYTES)
            .map(|id| u128::from_be_bytes(id.try_into().expect("16 bytes")))
            .collect()
    }

    #[tokio::test]
    async fn ids_delivered_since_the_last_commit_are_appended_until_the_file_is_twice_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = FileStore::new(dir.path().join("checkpoint.json"));
        store.commit(&with_ids(1..=3)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![1, 2, 3]);
        // 1 and 2 left the window; 4 and 5 were delivered.
        store.commit(&with_ids(3..=5)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![1, 2, 3, 4, 5]);
        // Nothing new: nothing written.
        store.commit(&with_ids(3..=5)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()).len(), 5);
        store.commit(&with_ids(4..=6)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![1, 2, 3, 4, 5, 6]);
        // A seventh id would make the file more than twice the window: it is rewritten.
        store.commit(&with_ids(5..=7)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![5, 6, 7]);
        // A window that no longer holds the file's newest id (more ids came than are remembered)
        // rewrites it too, as does a new process, which does not know the file.
        store.commit(&with_ids(20..=22)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![20, 21, 22]);
        let mut restarted = FileStore::new(dir.path().join("checkpoint.json"));
        restarted.commit(&with_ids(21..=23)).await.expect("commit");
        assert_eq!(stored_ids(dir.path()), vec![21, 22, 23]);
        let loaded = restarted.load().await.expect("load").expect("present");
        assert_eq!(loaded.decode_ids().expect("ids"), vec![21, 22, 23]);
    }

    #[tokio::test]
    async fn part_of_an_id_left_by_an_interrupted_append_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.json");
        let mut store = FileStore::new(path.clone());
        store.commit(&sample()).await.expect("commit");
        let ids = dir.path().join("checkpoint.ids");
        let mut bytes = std::fs::read(&ids).expect("read");
        bytes.extend_from_slice(&[7; 9]);
        std::fs::write(&ids, bytes).expect("write");
        let loaded = store.load().await.expect("load").expect("present");
        assert_eq!(loaded.decode_ids().expect("ids"), vec![1, u128::MAX]);
    }

    fn changes(entries: &[(&str, Option<u64>)]) -> Offsets {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn offsets_are_appended_and_a_forgotten_key_is_written_one_commit_late() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("offsets");
        let mut log = OffsetsLog::new(path.clone());
        log.write(&changes(&[("a/1", Some(10)), ("a/2", Some(20))]))
            .expect("write");
        log.write(&changes(&[("a/1", Some(15)), ("a/2", None)]))
            .expect("write");
        let reread = |path: &Path| OffsetsLog::new(path.to_owned()).read().expect("read");
        // a/2's forgetting is not written yet: the cursor that settled it may not be either.
        assert_eq!(
            reread(&path),
            changes(&[("a/1", Some(15)), ("a/2", Some(20))])
        );
        log.write(&changes(&[("a/3", Some(1))])).expect("write");
        assert_eq!(
            reread(&path),
            changes(&[("a/1", Some(15)), ("a/3", Some(1))])
        );
        // A line cut by a crash is left out, and a restarted writer goes on from what is there.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(br#"["a/4",9"#);
        std::fs::write(&path, bytes).expect("write");
        let mut restarted = OffsetsLog::new(path.clone());
        assert_eq!(restarted.read().expect("read").len(), 2);
        restarted
            .write(&changes(&[("a/1", Some(16))]))
            .expect("write");
        assert_eq!(
            reread(&path),
            changes(&[("a/1", Some(16)), ("a/3", Some(1))])
        );
    }

    #[test]
    fn the_offsets_file_is_rewritten_once_it_holds_far_more_than_the_live_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("offsets");
        let mut log = OffsetsLog::new(path.clone());
        let key = "insights-logs-auditevent/resourceId=/SUBSCRIPTIONS/X/y=2026/m=12/d=01/h=10/m=00/PT1H.json";
        for offset in 0..5_000u64 {
            log.write(&changes(&[(key, Some(offset))])).expect("write");
        }
        // One live key: the file never grows past twice its line and the slack.
        let size = std::fs::metadata(&path).expect("stat").len();
        assert!(size < 2 * 120 + 65_536 + 200, "{size} bytes");
        assert_eq!(
            OffsetsLog::new(path).read().expect("read"),
            changes(&[(key, Some(4_999))])
        );
    }

    #[tokio::test]
    async fn a_file_store_keeps_the_offsets_beside_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.json");
        let mut store = FileStore::new(path.clone());
        store
            .commit(&Checkpoint {
                offsets: changes(&[("c/b", Some(42))]),
                ..sample()
            })
            .await
            .expect("commit");
        let json = std::fs::read_to_string(&path).expect("json");
        assert!(!json.contains("c/b"), "not in the JSON: {json}");
        let loaded = FileStore::new(path)
            .load()
            .await
            .expect("load")
            .expect("present");
        assert_eq!(loaded.offsets, changes(&[("c/b", Some(42))]));
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
