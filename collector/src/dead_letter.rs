//! The dead-letter file: every payload the collector could not use, with why and where it came from.
//!
//! Nothing Azure sends is dropped silently. A record that is not valid JSON, or valid JSON without the
//! shape its API promises, is appended here (NDJSON, fsynced) before the checkpoint moves past it, so
//! an operator can inspect it, fix the cause and replay it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;

#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    file: Option<File>,
}

/// One rejected payload.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub source: &'a str,
    pub origin: &'a str,
    pub category: &'a str,
    pub reason: &'a str,
    pub payload: &'a str,
}

impl DeadLetters {
    pub fn new(path: PathBuf) -> Self {
        DeadLetters { path, file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the letters and fsyncs them; only then may the batch they came from be committed.
    pub fn append(&mut self, letters: &[DeadLetter<'_>]) -> std::io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let now = Utc::now();
        for letter in letters {
            buf.extend_from_slice(b"{\"time\":\"");
            crate::json::push_time(&mut buf, now);
            buf.extend_from_slice(b"\",\"source\":");
            crate::json::push_str(&mut buf, letter.source);
            buf.extend_from_slice(b",\"origin\":");
            crate::json::push_str(&mut buf, &crate::redact::redact(letter.origin));
            buf.extend_from_slice(b",\"category\":");
            crate::json::push_str(&mut buf, letter.category);
            buf.extend_from_slice(b",\"reason\":");
            crate::json::push_str(&mut buf, letter.reason);
            buf.extend_from_slice(b",\"payload\":");
            crate::json::push_str(&mut buf, letter.payload);
            buf.extend_from_slice(b"}\n");
        }
        let path = &self.path;
        let slot = &mut self.file;
        crate::fsutil::blocking(|| {
            if slot.is_none() {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                *slot = Some(OpenOptions::new().create(true).append(true).open(path)?);
            }
            let file = slot
                .as_mut()
                .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
            file.write_all(&buf)?;
            file.sync_data()
        })
    }
}
