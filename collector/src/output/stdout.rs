//! The `stdout` output: one line per event, JSON for `kubectl logs` and pipes, or a short
//! summary for people.
//!
//! A reader that goes away (`azlog-collector demo | head`) is not an outage to wait out: the
//! output says so through [`CLOSED`], the collector stops as on SIGTERM, and what was not
//! delivered is read again at the next start.

use std::io::Write;

use tokio::sync::Notify;

use super::{Delivered, DeliveryError, Dispatch, Output, line};
use crate::config::{JsonFormat, StdoutFormat};
use crate::event::Event;

/// Notified once stdout's reader has closed it.
pub static CLOSED: Notify = Notify::const_new();

#[derive(Debug)]
pub struct StdoutOutput {
    name: String,
    format: StdoutFormat,
    buf: Vec<u8>,
}

impl StdoutOutput {
    pub fn new(name: String, format: StdoutFormat) -> Self {
        StdoutOutput {
            name,
            format,
            buf: Vec::new(),
        }
    }
}

/// `2026-12-01T10:00:00Z  warning  activityLog  Create or Update Virtual Machine  alice@contoso.com  Succeeded`
fn push_summary(out: &mut Vec<u8>, event: &Event) {
    let _ = write!(
        out,
        "{}  {:<13} {:<14} {}",
        event.time.format("%Y-%m-%dT%H:%M:%SZ"),
        event.severity.as_str(),
        event.kind.as_str(),
        event.title.replace(['\n', '\r'], " ")
    );
    for part in [&event.actor, &event.outcome].into_iter().flatten() {
        let _ = write!(out, "  {}", part.replace(['\n', '\r'], " "));
    }
    out.push(b'\n');
}

impl Output for StdoutOutput {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        self.buf.clear();
        for event in &batch.events {
            match self.format {
                StdoutFormat::Summary => push_summary(&mut self.buf, event),
                StdoutFormat::Ndjson => line::push_line(&mut self.buf, event, JsonFormat::Ndjson),
                StdoutFormat::Jsonld => line::push_line(&mut self.buf, event, JsonFormat::Jsonld),
            }
        }
        let buf = &self.buf;
        let written = crate::fsutil::blocking(|| {
            let mut out = std::io::stdout().lock();
            out.write_all(buf)?;
            out.flush()
        });
        match written {
            Ok(()) => Ok(Delivered {
                sent: batch.events.len(),
                ..Delivered::default()
            }),
            Err(e) => {
                let closed = e.kind() == std::io::ErrorKind::BrokenPipe;
                if closed {
                    CLOSED.notify_one();
                }
                Err(DeliveryError {
                    output: self.name.clone(),
                    category: if closed { "closed" } else { "io" },
                    message: if closed {
                        "stdout was closed by its reader; the collector stops".to_owned()
                    } else {
                        format!("failed to write to stdout: {e}")
                    },
                })
            }
        }
    }
}
