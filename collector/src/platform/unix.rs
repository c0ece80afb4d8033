//! The seams on Linux (and other Unix systems).

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use tokio::net::TcpStream;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::Usage;

/// This machine's name, for events that carry no host of their own.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the live local buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// fsyncs a directory, so that a rename or a new file inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Bytes in the socket's send queue: written, and not yet acknowledged by the receiving TCP stack.
/// Always known here.
pub fn unacknowledged(stream: &TcpStream) -> io::Result<Option<u64>> {
    let mut pending: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer, which points at a live local; the
    // descriptor is the open socket `stream` owns.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut pending) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(Some(u64::try_from(pending).unwrap_or(0)))
    }
}

fn rusage(who: libc::c_int) -> Usage {
    // SAFETY: rusage is plain data; getrusage fills it and it is read only on success.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Usage::default();
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    Usage {
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        // Linux reports kibibytes.
        peak_rss_bytes: u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024,
    }
}

/// This process's CPU time and peak memory.
pub fn process_usage() -> Usage {
    rusage(libc::RUSAGE_SELF)
}

/// The calling thread's CPU time, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    rusage(libc::RUSAGE_THREAD).cpu_seconds
}

/// The requests to stop a collector: SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C).
#[derive(Debug)]
pub struct StopRequests {
    terminate: Signal,
}

impl StopRequests {
    pub fn listen() -> io::Result<StopRequests> {
        Ok(StopRequests {
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next request to stop.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}
