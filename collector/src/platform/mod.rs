//! What differs between Linux and Windows, behind small named seams: this machine's name, how many
//! bytes a TCP peer has yet to acknowledge, CPU time and peak memory for the benchmarks, and the
//! requests to stop. Everything else in the collector is the same code on both.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// CPU time and peak memory of this process (or thread) so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// The most memory resident at once, in bytes (0 where the platform does not say).
    pub peak_rss_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_a_name() {
        let name = hostname().expect("a hostname");
        assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
    }

    #[test]
    fn cpu_time_and_memory_are_counted() {
        let before = process_usage();
        // Work the optimiser cannot remove.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = process_usage();
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "{before:?} {after:?}"
        );
        assert!(after.peak_rss_bytes > 0);
        assert!(thread_cpu_seconds() > 0.0);
    }

    #[tokio::test]
    async fn an_idle_connection_has_nothing_unacknowledged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let _server = listener.accept().await.expect("accept");
        assert_eq!(unacknowledged(&client).expect("the send queue"), Some(0));
    }
}
