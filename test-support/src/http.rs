//! Plain HTTP on loopback, for health and metrics endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Whether something listens on `port` and its `/healthz` answers 200.
pub fn healthy(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok() && http_get(port, "/healthz").0 == 200
}

/// A plain HTTP GET on loopback: the status and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
