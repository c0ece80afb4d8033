//! The `stdout` output: one JSON line per event, for `kubectl logs` and quick looks.

use std::io::Write;

use super::{Delivered, DeliveryError, Dispatch, Output, line};
use crate::config::JsonFormat;

#[derive(Debug)]
pub struct StdoutOutput {
    name: String,
    format: JsonFormat,
    buf: Vec<u8>,
}

impl StdoutOutput {
    pub fn new(name: String, format: JsonFormat) -> Self {
        StdoutOutput {
            name,
            format,
            buf: Vec::new(),
        }
    }
}

impl Output for StdoutOutput {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        self.buf.clear();
        for event in &batch.events {
            line::push_line(&mut self.buf, event, self.format);
        }
        let buf = &self.buf;
        crate::fsutil::blocking(|| {
            let mut out = std::io::stdout().lock();
            out.write_all(buf)?;
            out.flush()
        })
        .map_err(|e| DeliveryError {
            output: self.name.clone(),
            category: "io",
            message: format!("failed to write to stdout: {e}"),
        })?;
        Ok(Delivered {
            sent: batch.events.len(),
            ..Delivered::default()
        })
    }
}
