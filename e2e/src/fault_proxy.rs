//! A proxy in front of a real service (Azurite) that answers chosen requests itself with the errors
//! the real Azure Storage sends under load: 503 ServerBusy and 500 OperationTimedOut. Azurite cannot
//! produce them, and a collector must retry them without losing or doubling anything.
//!
//! It speaks just enough HTTP/1.1 for GET requests: each accepted connection carries one request,
//! answered and closed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An error the proxy answers with instead of forwarding.
#[derive(Debug, Clone, Copy)]
pub enum StorageFault {
    /// 503 ServerBusy, as a storage account answers beyond its scalability targets.
    ServerBusy,
    /// 500 OperationTimedOut.
    OperationTimedOut,
}

#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    faults: Arc<Mutex<VecDeque<StorageFault>>>,
    answered: Arc<Mutex<usize>>,
    targets: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let faults: Arc<Mutex<VecDeque<StorageFault>>> = Arc::default();
        let answered: Arc<Mutex<usize>> = Arc::default();
        let targets: Arc<Mutex<Vec<String>>> = Arc::default();
        let (queue, count, seen) = (faults.clone(), answered.clone(), targets.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = queue.lock().ok().and_then(|mut q| q.pop_front());
                if fault.is_some()
                    && let Ok(mut n) = count.lock()
                {
                    *n += 1;
                }
                tokio::spawn(serve(client, upstream, fault, seen.clone()));
            }
        });
        Ok(FaultProxy {
            address,
            faults,
            answered,
            targets,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answers the next requests with these faults, in order.
    pub fn inject(&self, faults: &[StorageFault]) {
        if let Ok(mut queue) = self.faults.lock() {
            queue.extend(faults);
        }
    }

    /// How many faults were answered so far.
    pub fn answered(&self) -> usize {
        self.answered.lock().map_or(0, |n| *n)
    }

    /// The target (path and query) of every request received so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Option<StorageFault>,
    targets: Arc<Mutex<Vec<String>>>,
) {
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    if let (Some(target), Ok(mut seen)) = (head.split(' ').nth(1), targets.lock()) {
        seen.push(target.to_owned());
    }
    if let Some(fault) = fault {
        let (status, code, message) = match fault {
            StorageFault::ServerBusy => (
                "503 Service Unavailable",
                "ServerBusy",
                "The server is busy.",
            ),
            StorageFault::OperationTimedOut => (
                "500 Internal Server Error",
                "OperationTimedOut",
                "Operation could not be completed within the specified time.",
            ),
        };
        let body = format!(
            r#"{{"odata.error":{{"code":"{code}","message":{{"lang":"en-US","value":"{message}"}}}}}}"#
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(response.as_bytes()).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    // One request per connection: ask the upstream to close when done, so its answer ends at EOF.
    let head = head
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = format!("{}\r\nConnection: close\r\n\r\n", head.trim_end());
    if server.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = tokio::io::copy(&mut server, &mut client).await;
}

/// The request line and headers (GET requests carry no body).
async fn read_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}
