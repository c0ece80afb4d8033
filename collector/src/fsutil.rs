//! Small filesystem helpers shared by the checkpoint store, the dead-letter file and the file output.

use std::path::Path;

/// Runs blocking filesystem work without stalling other tasks on a multi-threaded runtime. On a
/// current-thread runtime (unit tests) there is no other worker to hand tasks to, so it runs inline.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Makes a rename or a new file inside `dir` survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    crate::platform::sync_dir(dir)
}
