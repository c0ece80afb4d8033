//! The `syslog` output: RFC 5424 or RFC 3164 over UDP, TCP or TLS, with JSON, plain, CEF or LEEF
//! bodies. See [`transport`] for what "delivered" means on each transport.

pub mod cef;
pub mod encode;
pub mod leef;
pub mod transport;

use std::sync::Arc;

use rustls::ClientConfig;

use super::{Delivered, DeliveryError, Dispatch, Output, OutputContext, SetupError};
use crate::config::{SyslogOutputConfig, Transport, split_host_port};
use crate::metrics::Metrics;
use encode::{Encoded, Encoder};
use transport::Connection;

#[derive(Debug)]
pub struct SyslogOutput {
    name: String,
    config: SyslogOutputConfig,
    host: String,
    port: u16,
    encoder: Encoder,
    tls: Option<Arc<ClientConfig>>,
    connection: Option<Connection>,
    encoded: Encoded,
    metrics: Arc<Metrics>,
}

impl SyslogOutput {
    pub fn new(
        name: String,
        config: SyslogOutputConfig,
        ctx: &OutputContext,
    ) -> Result<Self, SetupError> {
        let setup_err = |message: String| SetupError {
            output: name.clone(),
            message,
        };
        let (host, port) = split_host_port(&config.address).map_err(setup_err)?;
        let tls = match config.transport {
            Transport::Tls => {
                Some(crate::tls::client_config(config.tls.as_ref()).map_err(setup_err)?)
            }
            Transport::Udp | Transport::Tcp => None,
        };
        let encoder = Encoder::new(
            &config,
            &crate::platform::hostname().unwrap_or_else(|| "-".into()),
        );
        Ok(SyslogOutput {
            name,
            host,
            port,
            encoder,
            tls,
            connection: None,
            encoded: Encoded::default(),
            metrics: ctx.metrics.clone(),
            config,
        })
    }

    fn error(&self, err: transport::SendError) -> DeliveryError {
        DeliveryError {
            output: self.name.clone(),
            category: err.category,
            message: err.message,
        }
    }
}

impl Output for SyslogOutput {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        // A batch whose events were all duplicates still passes through to keep acks in order; it
        // has nothing to send, so it must not wait on a receiver that is down.
        if batch.events.is_empty() {
            return Ok(Delivered::default());
        }
        self.encoded.clear();
        for event in &batch.events {
            self.encoder.encode(event, &mut self.encoded);
        }
        if self.connection.as_mut().is_some_and(|c| !c.is_open()) {
            tracing::info!(output = %self.name, "the receiver closed the connection; reconnecting");
            self.connection = None;
        }
        if self.connection.is_none() {
            let conn = transport::connect(&self.config, &self.host, self.port, self.tls.as_ref())
                .await
                .map_err(|e| self.error(e))?;
            tracing::info!(output = %self.name, address = %self.config.address, transport = ?self.config.transport, "connected");
            self.connection = Some(conn);
        }
        let Some(conn) = self.connection.as_mut() else {
            return Err(self.error(transport::SendError {
                category: "connect",
                message: "no connection".into(),
            }));
        };
        if let Err(e) = conn
            .send(
                &self.encoded.bytes,
                &self.encoded.messages,
                self.config.ack_timeout,
            )
            .await
        {
            // Whatever state the stream is in, it cannot be trusted for the retry.
            self.connection = None;
            return Err(self.error(e));
        }
        if self.encoded.truncated > 0 {
            self.metrics
                .events_truncated
                .with_label_values(&[&self.name])
                .inc_by(self.encoded.truncated as u64);
        }
        Ok(Delivered {
            sent: batch.events.len(),
            skipped: 0,
            truncated: self.encoded.truncated,
        })
    }

    async fn close(&mut self) {
        if let Some(mut conn) = self.connection.take() {
            conn.shutdown().await;
        }
    }
}
