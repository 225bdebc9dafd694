//! Crash-safe file writes.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use ember_core::{Error, Result};

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(path, std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the
/// new one, never a torn one: write a temporary file beside it, fsync it, rename it over
/// `path`, then fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io(
            path,
            "no file name",
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| io(&tmp, "fsync", e))?;
        fs::rename(&tmp, path).map_err(|e| io(path, "rename", e))?;
        // The rename itself must reach the disk.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
