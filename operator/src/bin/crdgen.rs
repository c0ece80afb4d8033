//! Writes the CRDs from the Rust types to `crds/` (for `kubectl apply`) and `charts/azlog/crds/` (for
//! Helm), or to the one directory given.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = match std::env::args_os().nth(1) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![root.join("crds"), root.join("charts/azlog/crds")],
    };
    for (file, crd) in dirs.iter().flat_map(|dir| {
        azlog_operator::crd::all()
            .into_iter()
            .map(move |(f, c)| (dir.join(f), c))
    }) {
        let path = file;
        let written = azlog_operator::crd::to_yaml(&crd)
            .map_err(|e| e.to_string())
            .and_then(|yaml| std::fs::write(&path, yaml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: failed to write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
