//! The `file` output: NDJSON or JSON-LD files in azlog's folder layout, for file forwarders.
//!
//! Files are written under a hidden in-progress name (`.azlog-….json.partial`) and renamed to their
//! final name (`azlog-….json`) once they reach their size or age limit, so a forwarder watching
//! `*.json` never reads a half-written file.
//!
//! Durability: batches are written as they come and fsynced together (see `Output::sync`) before
//! any of them is acknowledged, so a power cut cannot leave the checkpoint ahead of the files.
//!
//! Exactly-once across crashes: a batch is written before it counts as delivered, but the checkpoint
//! is written later, so a crash can leave events in these files that the
//! source will read again. At start the output reads back the ids of the newest lines it wrote
//! (as many as could have been in flight) and skips those events when they come again. A line torn by
//! the crash is cut off; its event comes again and is written whole.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::{Delivered, DeliveryError, Dispatch, Output, OutputContext, SetupError, line};
use crate::config::{FileOutputConfig, JsonFormat};
use crate::dedup::IdHasher;
use crate::event::EventKind;
use crate::metrics::Metrics;

const PARTIAL_SUFFIX: &str = ".partial";
const PREFIX: &str = "azlog-";

#[derive(Debug)]
pub struct FileOutput {
    name: String,
    config: FileOutputConfig,
    folders: Vec<Folder>,
    /// Hashes of events already in the files when the output started.
    recovered: HashSet<u128>,
    hasher: IdHasher,
    metrics: Arc<Metrics>,
    /// Per-kind encode buffers, reused across batches.
    buffers: Vec<Vec<u8>>,
    sequence: u64,
    /// When the retention limits were last applied.
    retention_checked: Option<Instant>,
}

/// How often finished files are checked against a retention age when none finishes.
const RETENTION_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug)]
struct Folder {
    kind: EventKind,
    dir: PathBuf,
    current: Option<OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    partial: PathBuf,
    file: File,
    bytes: u64,
    opened: Instant,
    /// Written since the last fsync.
    dirty: bool,
}

fn extension(format: JsonFormat) -> &'static str {
    match format {
        JsonFormat::Ndjson => "json",
        JsonFormat::Jsonld => "jsonld",
    }
}

impl FileOutput {
    pub fn open(
        name: String,
        config: FileOutputConfig,
        ctx: &OutputContext,
    ) -> Result<FileOutput, SetupError> {
        let setup_err = |message: String| SetupError {
            output: name.clone(),
            message,
        };
        std::fs::create_dir_all(&config.directory).map_err(|e| {
            setup_err(format!(
                "cannot create directory {}: {e}",
                config.directory.display()
            ))
        })?;
        let json_ld = config.format == JsonFormat::Jsonld;
        let ext = extension(config.format);
        let mut folders = Vec::new();
        let mut recovered = HashSet::new();
        for kind in EventKind::ALL {
            let dir = config.directory.join(kind.folder(json_ld));
            let current = recover_folder(&dir, ext)
                .map_err(|e| setup_err(format!("cannot recover {}: {e}", dir.display())))?;
            let ids = recent_ids(&dir, ext, ctx.recovery_window)
                .map_err(|e| setup_err(format!("cannot read back {}: {e}", dir.display())))?;
            recovered.extend(ids.iter().map(|id| ctx.hasher.hash(id)));
            folders.push(Folder { kind, dir, current });
        }
        if !recovered.is_empty() {
            tracing::info!(output = %name, events = recovered.len(), "read back recently written events; they will not be written twice");
        }
        Ok(FileOutput {
            name,
            config,
            folders,
            recovered,
            hasher: ctx.hasher,
            metrics: ctx.metrics.clone(),
            buffers: vec![Vec::new(); EventKind::ALL.len()],
            sequence: 0,
            retention_checked: None,
        })
    }

    fn io_err(&self, what: &str, e: std::io::Error) -> DeliveryError {
        DeliveryError {
            output: self.name.clone(),
            category: "io",
            message: format!("{what}: {e}"),
        }
    }

    fn write_buffers(&mut self) -> std::io::Result<()> {
        let ext = extension(self.config.format);
        // Remember where every touched file ended, so a failure part-way rolls the whole batch back and
        // the retry does not write any event twice.
        let mut written: Vec<(usize, u64)> = Vec::new();
        let mut result = Ok(());
        for (i, folder) in self.folders.iter_mut().enumerate() {
            let buf = &self.buffers[i];
            if buf.is_empty() {
                continue;
            }
            let attempt = (|| {
                if folder.current.is_none() {
                    self.sequence += 1;
                    folder.current = Some(start_file(&folder.dir, ext, self.sequence)?);
                }
                let file = folder
                    .current
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("no open file"))?;
                written.push((i, file.bytes));
                file.file.write_all(buf)?;
                file.bytes += buf.len() as u64;
                file.dirty = true;
                Ok(())
            })();
            if let Err(e) = attempt {
                result = Err(e);
                break;
            }
        }
        if result.is_err() {
            for (i, length) in written {
                if let Some(file) = self.folders[i].current.as_mut() {
                    // Best effort: if even the truncate fails, the file is abandoned below so no torn
                    // line ever reaches a finished file.
                    if file.file.set_len(length).is_ok() {
                        file.bytes = length;
                    } else {
                        self.folders[i].current = None;
                    }
                }
            }
        }
        result
    }

    /// Finishes files that reached their size or age limit.
    fn rotate_due(&mut self, force: bool) -> std::io::Result<()> {
        let (max_bytes, max_age) = (self.config.max_file_bytes, self.config.max_file_age);
        let mut finished = false;
        for folder in &mut self.folders {
            let due = folder.current.as_ref().is_some_and(|f| {
                force || f.bytes >= max_bytes || (f.bytes > 0 && f.opened.elapsed() >= max_age)
            });
            if due && let Some(file) = folder.current.take() {
                if file.bytes == 0 {
                    std::fs::remove_file(&file.partial)?;
                    continue;
                }
                finish(&folder.dir, file)?;
                self.metrics
                    .files_finished
                    .with_label_values(&[&self.name])
                    .inc();
                tracing::debug!(output = %self.name, kind = folder.kind.as_str(), "finished a file");
                finished = true;
            }
        }
        // Age limits are looked at once a minute even when no file finishes.
        let age_due = self
            .retention_checked
            .is_none_or(|at| at.elapsed() >= RETENTION_CHECK);
        if finished || age_due {
            self.retention_checked = Some(Instant::now());
            self.apply_retention()?;
        }
        Ok(())
    }

    /// Deletes finished files, oldest first, beyond the retention limits; the newest finished
    /// file of each folder stays, because the output reads its last lines back after a crash.
    fn apply_retention(&self) -> std::io::Result<()> {
        let Some(retention) = &self.config.retention else {
            return Ok(());
        };
        let ext = extension(self.config.format);
        let mut total = 0u64;
        let mut deletable = Vec::new();
        for folder in &self.folders {
            let mut finished = list(&folder.dir, |name| is_finished(name, ext))?;
            // The newest counts towards the size but stays.
            if let Some(newest) = finished.pop() {
                total += std::fs::metadata(&newest).map_or(0, |meta| meta.len());
            }
            for path in finished {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue; // deleted by someone else meanwhile
                };
                total += meta.len();
                let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
                deletable.push((name, path, meta));
            }
        }
        // Names start with the time a file was begun: oldest first across folders.
        deletable.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, path, meta) in deletable {
            let too_old = retention.max_age.is_some_and(|max| {
                meta.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > max)
            });
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            let reason = match (too_old, too_big) {
                (true, _) => "age",
                (false, true) => "size",
                (false, false) => continue,
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total = total.saturating_sub(meta.len());
            self.metrics
                .files_deleted
                .with_label_values(&[&self.name, reason])
                .inc();
            tracing::debug!(output = %self.name, file = %path.display(), reason, "deleted a finished file");
        }
        Ok(())
    }
}

impl Output for FileOutput {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        for buf in &mut self.buffers {
            buf.clear();
        }
        let mut delivered = Delivered::default();
        for event in &batch.events {
            if !self.recovered.is_empty() && self.recovered.contains(&self.hasher.hash(&event.id)) {
                delivered.skipped += 1;
                continue;
            }
            line::push_line(
                &mut self.buffers[event.kind.index()],
                event,
                self.config.format,
            );
            delivered.sent += 1;
        }
        crate::fsutil::blocking(|| {
            self.write_buffers()?;
            self.rotate_due(false)
        })
        .map_err(|e| {
            self.io_err(
                &format!("cannot write below {}", self.config.directory.display()),
                e,
            )
        })?;
        Ok(delivered)
    }

    async fn sync(&mut self) -> Result<(), DeliveryError> {
        if !self.config.fsync {
            return Ok(());
        }
        crate::fsutil::blocking(|| {
            for file in self
                .folders
                .iter_mut()
                .filter_map(|f| f.current.as_mut())
                .filter(|f| f.dirty)
            {
                file.file.sync_data()?;
                file.dirty = false;
            }
            Ok(())
        })
        .map_err(|e| self.io_err("cannot fsync the file output", e))
    }

    async fn tick(&mut self) -> Result<(), DeliveryError> {
        crate::fsutil::blocking(|| self.rotate_due(false))
            .map_err(|e| self.io_err("cannot finish a file", e))
    }

    async fn close(&mut self) {
        if let Err(e) = crate::fsutil::blocking(|| self.rotate_due(true)) {
            tracing::warn!(output = %self.name, error = %e, "could not finish files at shutdown; they are finished at the next start");
        }
    }
}

fn start_file(dir: &Path, ext: &str, sequence: u64) -> std::io::Result<OpenFile> {
    std::fs::create_dir_all(dir)?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let partial = dir.join(format!(
        ".{PREFIX}{stamp}-{sequence:06}.{ext}{PARTIAL_SUFFIX}"
    ));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&partial)?;
    crate::fsutil::sync_dir(dir)?;
    Ok(OpenFile {
        partial,
        file,
        bytes: 0,
        opened: Instant::now(),
        dirty: false,
    })
}

/// Renames an in-progress file to its final name, durably.
fn finish(dir: &Path, file: OpenFile) -> std::io::Result<()> {
    file.file.sync_all()?;
    let final_path = final_name(&file.partial).ok_or_else(|| {
        std::io::Error::other(format!(
            "{} is not an in-progress file name",
            file.partial.display()
        ))
    })?;
    std::fs::rename(&file.partial, &final_path)?;
    crate::fsutil::sync_dir(dir)
}

/// A finished file's name: `azlog-….<ext>`.
fn is_finished(name: &str, ext: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(&format!(".{ext}"))
}

/// An in-progress file's name: `.azlog-….<ext>.partial`.
fn is_in_progress(name: &str, ext: &str) -> bool {
    name.strip_prefix('.')
        .is_some_and(|name| name.starts_with(PREFIX))
        && name.ends_with(&format!(".{ext}{PARTIAL_SUFFIX}"))
}

fn final_name(partial: &Path) -> Option<PathBuf> {
    let name = partial.file_name()?.to_str()?;
    let inner = name.strip_prefix('.')?.strip_suffix(PARTIAL_SUFFIX)?;
    Some(partial.with_file_name(inner))
}

/// After a crash: cuts a torn last line off in-progress files and reopens the newest to continue it.
fn recover_folder(dir: &Path, ext: &str) -> std::io::Result<Option<OpenFile>> {
    let mut partials = list(dir, |name| is_in_progress(name, ext))?;
    let Some(newest) = partials.pop() else {
        return Ok(None);
    };
    // Only one file per folder is ever in progress; older ones are leftovers of an interrupted finish.
    for older in partials {
        let bytes = cut_torn_line(&older)?;
        let file = OpenOptions::new().append(true).open(&older)?;
        finish(
            dir,
            OpenFile {
                partial: older,
                file,
                bytes,
                opened: Instant::now(),
                dirty: true,
            },
        )?;
    }
    let bytes = cut_torn_line(&newest)?;
    let file = OpenOptions::new().append(true).open(&newest)?;
    Ok(Some(OpenFile {
        partial: newest,
        file,
        bytes,
        opened: Instant::now(),
        dirty: false,
    }))
}

/// Truncates a file after its last newline; answers the new length.
fn cut_torn_line(path: &Path) -> std::io::Result<u64> {
    let content = std::fs::read(path)?;
    let keep = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if keep < content.len() {
        tracing::warn!(file = %path.display(), bytes = content.len() - keep, "cut off a line torn by a crash; its event will be written again");
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(keep as u64)?;
    }
    Ok(keep as u64)
}

/// Sorted file names in `dir` matching `keep`; the naming scheme sorts by creation time.
fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str()
            && keep(name)
        {
            names.push(name.to_owned());
        }
    }
    // In-progress names carry a leading dot; compare without it so both kinds interleave by time.
    names.sort_by(|a, b| a.trim_start_matches('.').cmp(b.trim_start_matches('.')));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Ids of the newest `window` lines in the folder, finished and in-progress files alike.
fn recent_ids(dir: &Path, ext: &str, window: usize) -> std::io::Result<Vec<String>> {
    let files = list(dir, |name| {
        is_finished(name, ext) || is_in_progress(name, ext)
    })?;
    let mut ids = Vec::new();
    for path in files.iter().rev() {
        let content = std::fs::read(path)?;
        for line in content
            .split(|&b| b == b'\n')
            .rev()
            .filter(|l| !l.is_empty())
        {
            if ids.len() >= window {
                return Ok(ids);
            }
            if let Some(id) = line::id_of_line(line) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Retention;
    use crate::output::line::tests::event;
    use std::time::Duration;

    fn config(dir: &Path) -> FileOutputConfig {
        FileOutputConfig {
            name: None,
            directory: dir.to_owned(),
            format: JsonFormat::Ndjson,
            max_file_bytes: 4096,
            max_file_age: Duration::from_secs(3600),
            retention: None,
            fsync: false,
        }
    }

    fn ctx() -> OutputContext {
        OutputContext {
            hasher: IdHasher::new(5),
            recovery_window: 1000,
            metrics: Arc::new(Metrics::new()),
        }
    }

    fn batch(range: std::ops::Range<u32>) -> Dispatch {
        Dispatch {
            seq: 0,
            events: range
                .map(|i| event(&format!("id-{i}"), r#"{"payload":"x"}"#))
                .collect(),
            dispatched_at: tokio::time::Instant::now(),
        }
    }

    fn all_ids(dir: &Path) -> Vec<String> {
        let folder = dir.join("AzureResourceManagerJson");
        let mut ids = Vec::new();
        for path in list(&folder, |_| true).expect("list") {
            for l in std::fs::read(&path)
                .expect("read")
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                ids.push(line::id_of_line(l).expect("valid line"));
            }
        }
        ids
    }

    fn finished(dir: &Path) -> Vec<PathBuf> {
        list(&dir.join("AzureResourceManagerJson"), |n| {
            !n.starts_with('.')
        })
        .expect("list")
    }

    #[tokio::test]
    async fn files_are_finished_at_the_size_limit_under_their_final_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = FileOutput::open("f".into(), config(dir.path()), &ctx()).expect("open");
        out.deliver(&batch(0..100)).await.expect("deliver");
        let done = finished(dir.path());
        assert!(!done.is_empty(), "a 4 KiB limit finishes files");
        for path in &done {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            assert!(
                name.starts_with("azlog-") && name.ends_with(".json"),
                "{name}"
            );
        }
        out.close().await;
        assert_eq!(all_ids(dir.path()).len(), 100);
        assert!(
            list(&dir.path().join("AzureResourceManagerJson"), |n| n
                .starts_with('.'))
            .expect("list")
            .is_empty()
        );
    }

    #[tokio::test]
    async fn retention_deletes_the_oldest_finished_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = ctx();
        let mut out = FileOutput::open(
            "f".into(),
            FileOutputConfig {
                retention: Some(Retention {
                    max_bytes: Some(20_000),
                    max_age: None,
                }),
                ..config(dir.path())
            },
            &context,
        )
        .expect("open");
        // Each batch is written at once; the file it lands in finishes past 4 KiB.
        let mut written = Vec::new();
        for i in 0..12u32 {
            out.deliver(&batch(i * 20..(i + 1) * 20))
                .await
                .expect("deliver");
            written.extend(finished(dir.path()));
        }
        written.sort();
        written.dedup();
        let kept = finished(dir.path());
        let bytes: u64 = kept
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum();
        assert!(bytes <= 20_000, "{bytes} bytes kept");
        assert!(kept.len() >= 2, "{kept:?}");
        assert!(written.len() > kept.len() + 2, "{written:?}");
        // What is kept is the newest: the tail of everything finished, in order.
        assert_eq!(kept, written[written.len() - kept.len()..]);
        let deleted = context
            .metrics
            .files_deleted
            .with_label_values(&["f", "size"])
            .get();
        assert_eq!(deleted as usize, written.len() - kept.len());
        // The file in progress is never touched.
        out.deliver(&batch(1000..1001)).await.expect("deliver");
        let in_progress = || {
            list(&dir.path().join("AzureResourceManagerJson"), |n| {
                n.starts_with('.')
            })
            .expect("list")
        };
        assert_eq!(in_progress().len(), 1);
        out.apply_retention().expect("retention");
        assert_eq!(in_progress().len(), 1);

        // An age limit deletes old files, but never the newest finished one.
        let mut aged = FileOutput::open(
            "f".into(),
            FileOutputConfig {
                retention: Some(Retention {
                    max_bytes: None,
                    max_age: Some(Duration::from_secs(3600)),
                }),
                ..config(dir.path())
            },
            &context,
        )
        .expect("open");
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        for path in finished(dir.path()) {
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(old).expect("set mtime");
        }
        aged.tick().await.expect("tick");
        assert_eq!(finished(dir.path()), kept[kept.len() - 1..]);
        assert!(
            context
                .metrics
                .files_deleted
                .with_label_values(&["f", "age"])
                .get()
                >= 1
        );
    }

    #[tokio::test]
    async fn events_written_before_a_crash_are_not_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = FileOutput::open("f".into(), config(dir.path()), &ctx()).expect("open");
        out.deliver(&batch(0..60)).await.expect("deliver");
        drop(out); // a crash: no close, in-progress file left behind
        let mut out = FileOutput::open("f".into(), config(dir.path()), &ctx()).expect("reopen");
        let delivered = out.deliver(&batch(30..90)).await.expect("deliver");
        assert_eq!(delivered.skipped, 30);
        assert_eq!(delivered.sent, 30);
        out.close().await;
        let ids = all_ids(dir.path());
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), 90);
        assert_eq!(unique.len(), 90);
    }

    #[tokio::test]
    async fn a_line_torn_by_a_crash_is_cut_and_written_again_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        cfg.max_file_bytes = 1 << 20;
        let mut out = FileOutput::open("f".into(), cfg.clone(), &ctx()).expect("open");
        out.deliver(&batch(0..3)).await.expect("deliver");
        drop(out);
        let folder = dir.path().join("AzureResourceManagerJson");
        let partial = list(&folder, |n| n.starts_with('.'))
            .expect("list")
            .pop()
            .expect("partial");
        let mut content = std::fs::read(&partial).expect("read");
        let cut = content.len() - 20; // the last line loses its end, as a crash mid-write would leave it
        content.truncate(cut);
        std::fs::write(&partial, &content).expect("write");
        let mut out = FileOutput::open("f".into(), cfg, &ctx()).expect("reopen");
        let delivered = out.deliver(&batch(0..3)).await.expect("deliver");
        assert_eq!((delivered.sent, delivered.skipped), (1, 2));
        out.close().await;
        assert_eq!(all_ids(dir.path()), vec!["id-0", "id-1", "id-2"]);
    }

    #[tokio::test]
    async fn a_quiet_file_is_finished_when_it_reaches_its_age() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        cfg.max_file_age = Duration::from_millis(50);
        cfg.max_file_bytes = 1 << 20;
        let mut out = FileOutput::open("f".into(), cfg, &ctx()).expect("open");
        out.deliver(&batch(0..2)).await.expect("deliver");
        assert!(finished(dir.path()).is_empty());
        std::thread::sleep(Duration::from_millis(60));
        out.tick().await.expect("tick");
        assert_eq!(finished(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn an_unwritable_directory_is_a_setup_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "").expect("write");
        let err =
            FileOutput::open("f".into(), config(&blocker.join("sub")), &ctx()).expect_err("fails");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
