//! Syslog connections: UDP datagrams, TCP streams and TLS streams (rustls).
//!
//! What "delivered" means on a stream: the batch was written and the receiver's TCP stack
//! acknowledged every byte (the socket's send queue drained), and the connection was not reset. That
//! catches a receiver that died while we wrote (its kernel answers with a reset), which a plain
//! "write returned" would miss. It cannot catch a receiver process that read the bytes and then died
//! before storing them: syslog has no application-level acknowledgement.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{SyslogOutputConfig, Transport};

#[derive(Debug)]
pub enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a send failed, with a category for metrics.
#[derive(Debug)]
pub struct SendError {
    pub category: &'static str,
    pub message: String,
}

fn send_err(category: &'static str, message: impl Into<String>) -> SendError {
    SendError {
        category,
        message: message.into(),
    }
}

pub async fn connect(
    config: &SyslogOutputConfig,
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Connection, SendError> {
    let target = format!("{host}:{port}");
    let resolve = tokio::time::timeout(config.connect_timeout, tokio::net::lookup_host(&target))
        .await
        .map_err(|_| send_err("connect", format!("resolving {target} timed out")))?
        .map_err(|e| send_err("connect", format!("cannot resolve {target}: {e}")))?;
    let addrs: Vec<_> = resolve.collect();
    let mut last_error = format!("{target} resolved to no address");
    for addr in addrs {
        let attempt = async {
            match config.transport {
                Transport::Udp => {
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let socket = UdpSocket::bind(bind).await?;
                    socket.connect(addr).await?;
                    Ok::<_, io::Error>(Connection::Udp(socket))
                }
                Transport::Tcp => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    Ok(Connection::Tcp(stream))
                }
                Transport::Tls => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let client = tls.ok_or_else(|| io::Error::other("TLS is not configured"))?;
                    let server_name = config
                        .tls
                        .as_ref()
                        .and_then(|t| t.server_name.clone())
                        .unwrap_or_else(|| host.to_owned());
                    let server_name = ServerName::try_from(server_name.clone()).map_err(|e| {
                        io::Error::other(format!(
                            "{server_name:?} is not a valid TLS server name: {e}"
                        ))
                    })?;
                    let mut tls_stream = TlsConnector::from(client.clone())
                        .connect(server_name, stream)
                        .await?;
                    await_acceptance(&mut tls_stream).await?;
                    Ok(Connection::Tls(Box::new(tls_stream)))
                }
            }
        };
        match tokio::time::timeout(config.connect_timeout, attempt).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last_error = format!("cannot connect to {addr}: {e}"),
            Err(_) => {
                last_error = format!(
                    "connecting to {addr} timed out after {:?}",
                    config.connect_timeout
                )
            }
        }
    }
    Err(send_err("connect", last_error))
}

impl Connection {
    /// False when the receiver has closed or reset the connection since the last send. Checked before
    /// writing, so a batch is not written into a connection that is already gone.
    pub fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 512];
        match self {
            Connection::Udp(_) => true,
            Connection::Tcp(stream) => still_open(stream.read(&mut probe).now_or_never()),
            Connection::Tls(stream) => still_open(stream.read(&mut probe).now_or_never()),
        }
    }

    /// Sends the encoded messages and waits until the receiver has them (see the module comment).
    pub async fn send(
        &mut self,
        bytes: &[u8],
        messages: &[std::ops::Range<usize>],
        ack_timeout: Duration,
    ) -> Result<(), SendError> {
        match self {
            Connection::Udp(socket) => {
                for range in messages {
                    socket
                        .send(&bytes[range.clone()])
                        .await
                        .map_err(|e| send_err("write", format!("udp send failed: {e}")))?;
                }
                Ok(())
            }
            Connection::Tcp(stream) => {
                write_all(stream, bytes).await?;
                wait_acknowledged(stream, ack_timeout).await?;
                check_not_reset(stream).await
            }
            Connection::Tls(stream) => {
                write_all(stream.as_mut(), bytes).await?;
                wait_acknowledged(stream.get_ref().0, ack_timeout).await?;
                check_not_reset(stream.as_mut()).await
            }
        }
    }

    pub async fn shutdown(&mut self) {
        match self {
            Connection::Udp(_) => {}
            Connection::Tcp(stream) => {
                let _ = stream.shutdown().await;
            }
            Connection::Tls(stream) => {
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// How long a TLS 1.3 server gets to refuse the session after our side of the handshake is done.
const POST_HANDSHAKE_GRACE: Duration = Duration::from_millis(500);

/// With TLS 1.3 our handshake completes before the server has judged our client certificate; a
/// refusal arrives as an alert just after. Without waiting for it, the first batch would be written
/// into a session the server already rejected and be counted as delivered.
async fn await_acceptance(stream: &mut TlsStream<TcpStream>) -> io::Result<()> {
    let mut probe = [0u8; 512];
    match tokio::time::timeout(POST_HANDSHAKE_GRACE, stream.read(&mut probe)).await {
        // Silence (or session tickets, which rustls consumes) means the session was accepted.
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the receiver closed the connection right after the TLS handshake; does it require a client certificate (tls.certFile, tls.keyFile) it trusts?",
        )),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("the receiver refused the TLS session: {e}"),
        )),
    }
}

/// Interprets one non-blocking read: nothing to read means open; end of stream or an error means
/// closed. Bytes from the receiver (TLS session tickets, or a chatty receiver) are read and dropped.
fn still_open(read: Option<io::Result<usize>>) -> bool {
    match read {
        None => true,
        Some(Ok(0)) | Some(Err(_)) => false,
        Some(Ok(_)) => true,
    }
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), SendError> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| send_err("write", format!("write failed: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| send_err("write", format!("flush failed: {e}")))
}

async fn wait_acknowledged(stream: &TcpStream, timeout: Duration) -> Result<(), SendError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        let pending = crate::platform::unacknowledged(stream)
            .map_err(|e| send_err("write", format!("cannot read the send queue: {e}")))?;
        let Some(pending) = pending else {
            // Said once per process: the guarantee is weaker here, and the log says so.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "this system cannot report which bytes a TCP receiver acknowledged (Windows \
                     10 1703 or later can); a batch counts as delivered once it is written, so a \
                     receiver that fails just then may lose it"
                )
            });
            return Ok(());
        };
        if pending == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(send_err(
                "ack_timeout",
                format!("the receiver did not acknowledge {pending} bytes within {timeout:?}"),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A reset empties the send queue too, so an empty queue alone does not prove delivery.
async fn check_not_reset<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), SendError> {
    let mut probe = [0u8; 512];
    match stream.read(&mut probe).now_or_never() {
        Some(Err(e)) => Err(send_err(
            "reset",
            format!("the receiver reset the connection: {e}"),
        )),
        _ => Ok(()),
    }
}
