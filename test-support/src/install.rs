//! What the install scripts (`e2e/scripts/install-*`) put in the cache, found or failed loudly.

use std::path::PathBuf;

/// Where the install scripts cache what they build: `$XDG_CACHE_HOME/azlog` or `~/.cache/azlog`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        })
        .join("azlog")
}

/// The root an install script filled: `$<variable>`, else `<cache>/<name>`. A missing or
/// unfinished install fails the test, naming `what` and the script that installs it.
pub fn installed(variable: &str, name: &str, what: &str, script: &str) -> PathBuf {
    let root = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(name));
    assert!(
        root.join(".complete").exists(),
        "{what} not installed in {}: run e2e/scripts/{script} (the README's test command does)",
        root.display()
    );
    root
}
