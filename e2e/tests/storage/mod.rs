//! What the storage suites share: Azurite with the account key in a file, a health port, and
//! waiting for exactly the expected events.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use azlog_e2e::azurite::{Azurite, KEY};

use azlog_test_support::collector::{Collector, wait_for_exactly};
use azlog_test_support::ports::free_port;
use azlog_test_support::wait::wait_until;

pub const WAIT: Duration = Duration::from_secs(120);

pub struct Setup {
    pub azurite: Azurite,
    pub dir: tempfile::TempDir,
    pub health: u16,
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let azurite = Azurite::start(dir.path());
    std::fs::write(dir.path().join("account-key"), KEY).expect("key");
    Setup {
        azurite,
        dir,
        health: free_port(),
    }
}

impl Setup {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the collector on `yaml` and waits for its health endpoint.
    pub fn start(&self, yaml: &str) -> Collector {
        let collector = Collector::start(self.path(), yaml);
        wait_until(WAIT, "the collector's health endpoint", || {
            std::net::TcpStream::connect(("127.0.0.1", self.health))
                .is_ok()
                .then_some(())
        });
        collector
    }

    pub fn wait_for_exactly(&self, expected: &HashSet<String>, what: &str) {
        wait_for_exactly(&self.path().join("out"), expected, WAIT, what);
    }
}
