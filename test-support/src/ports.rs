//! Loopback ports for test servers.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Ports handed out by this test process: the kernel may offer a just-released port again, and two
/// tests of one binary running at once must not both listen on (or expect nothing on) it.
static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free for both TCP and UDP on loopback, from the kernel's ephemeral range, never one this
/// process handed out before.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if given.insert(port) {
            return port;
        }
    }
}
