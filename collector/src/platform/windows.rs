//! The seams on Windows, through the Win32 API (windows-sys).

use std::io;
use std::os::windows::io::AsRawSocket;
use std::path::Path;

use tokio::net::TcpStream;
use tokio::signal::windows::{
    CtrlBreak, CtrlClose, CtrlShutdown, ctrl_break, ctrl_close, ctrl_shutdown,
};
use windows_sys::Win32::Foundation::{FILETIME, HANDLE};
use windows_sys::Win32::Networking::WinSock::{
    SIO_TCP_INFO, SOCKET, SOCKET_ERROR, TCP_INFO_v0, WSAEINVAL, WSAEOPNOTSUPP, WSAIoctl,
};
use windows_sys::Win32::System::ProcessStatus::{GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::SystemInformation::{ComputerNameDnsHostname, GetComputerNameExW};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, GetProcessTimes, GetThreadTimes,
};
use windows_sys::core::BOOL;

use super::Usage;

/// This machine's DNS host name, for events that carry no host of their own.
pub fn hostname() -> Option<String> {
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: the buffer and its length in UTF-16 units are live locals; on success `len` holds
    // the number of units written, without the terminating null.
    let ok = unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) };
    if ok == 0 {
        return None;
    }
    Some(String::from_utf16_lossy(&buf[..len as usize]))
}

/// Nothing to do: NTFS journals renames and file creations itself, and Windows offers no flush of a
/// directory (opening one as a file is refused with "Access denied"). The files' own data is still
/// flushed (`File::sync_all`, FlushFileBuffers) before a batch counts as delivered.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Bytes sent and not yet acknowledged by the receiving TCP stack (`TCP_INFO_v0.BytesInFlight`,
/// from `SIO_TCP_INFO`, Windows 10 1703 and later). None where the system cannot tell: older
/// Windows, and Wine, answer the request with WSAEOPNOTSUPP or WSAEINVAL.
pub fn unacknowledged(stream: &TcpStream) -> io::Result<Option<u64>> {
    let version: u32 = 0;
    // SAFETY: TCP_INFO_v0 is plain data, filled by WSAIoctl and read only on success.
    let mut info: TCP_INFO_v0 = unsafe { std::mem::zeroed() };
    let mut returned: u32 = 0;
    // SAFETY: every pointer is to a live local of the size given; the socket is the open one
    // `stream` owns; no overlapped I/O.
    let rc = unsafe {
        WSAIoctl(
            stream.as_raw_socket() as SOCKET,
            SIO_TCP_INFO,
            (&version as *const u32).cast(),
            size_of::<u32>() as u32,
            (&mut info as *mut TCP_INFO_v0).cast(),
            size_of::<TCP_INFO_v0>() as u32,
            &mut returned,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc != SOCKET_ERROR {
        return Ok(Some(u64::from(info.BytesInFlight)));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(code) if code == WSAEOPNOTSUPP || code == WSAEINVAL => Ok(None),
        _ => Err(error),
    }
}

/// The signature GetProcessTimes and GetThreadTimes share: creation, exit, kernel and user time.
type TimesOf = unsafe extern "system" fn(
    HANDLE,
    *mut FILETIME,
    *mut FILETIME,
    *mut FILETIME,
    *mut FILETIME,
) -> BOOL;

/// The kernel and user CPU time `times` reports for `handle`, in seconds (0 if it fails).
fn cpu_seconds(times: TimesOf, handle: HANDLE) -> f64 {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: a pseudo-handle of this process or thread, and four live FILETIMEs to write.
    let ok = unsafe { times(handle, &mut created, &mut exited, &mut kernel, &mut user) };
    // FILETIME counts 100-nanosecond intervals.
    let seconds = |t: FILETIME| {
        ((u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)) as f64 / 1e7
    };
    if ok == 0 {
        0.0
    } else {
        seconds(kernel) + seconds(user)
    }
}

/// This process's CPU time and peak memory (its peak working set).
pub fn process_usage() -> Usage {
    // SAFETY: GetCurrentProcess only returns this process's pseudo-handle.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: PROCESS_MEMORY_COUNTERS is plain data, filled by the call with its size given.
    let mut memory: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    let size = size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    memory.cb = size;
    // SAFETY: as above; the pseudo-handle of this process.
    let ok = unsafe { GetProcessMemoryInfo(process, &mut memory, size) };
    Usage {
        cpu_seconds: cpu_seconds(GetProcessTimes, process),
        peak_rss_bytes: if ok == 0 {
            0
        } else {
            memory.PeakWorkingSetSize as u64
        },
    }
}

/// The calling thread's CPU time, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: GetCurrentThread only returns this thread's pseudo-handle.
    cpu_seconds(GetThreadTimes, unsafe { GetCurrentThread() })
}

/// The requests to stop a collector: Ctrl-C and Ctrl-Break in a console, the console closing, and
/// the system shutting down (CTRL_SHUTDOWN_EVENT, which a stopped Windows container receives).
#[derive(Debug)]
pub struct StopRequests {
    brk: CtrlBreak,
    close: CtrlClose,
    shutdown: CtrlShutdown,
}

impl StopRequests {
    pub fn listen() -> io::Result<StopRequests> {
        Ok(StopRequests {
            brk: ctrl_break()?,
            close: ctrl_close()?,
            shutdown: ctrl_shutdown()?,
        })
    }

    /// Waits for the next request to stop.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.brk.recv() => {}
            _ = self.close.recv() => {}
            _ = self.shutdown.recv() => {}
        }
    }
}
