//! A run directory held by one process: an exclusive lock (`.lock`, holding the owner's pid),
//! atomic writes of every file in it, and no leftovers of killed writers.
//!
//! The lock is an OS file lock (`flock`), so it is released when the process exits however it
//! exits; a `.lock` file left by a killed process is stale and taken over. A second process
//! opening the same directory gets an error naming the process that holds it. Within one
//! process, opening a directory again shares the first handle (the trainer and the example
//! that drives it hold the same lock).
//!
//! ```
//! use ember_train::RunDir;
//! let dir = std::env::temp_dir().join(format!("ember-doc-run-{}", std::process::id()));
//! let run = RunDir::open(&dir)?;
//! run.write_json("config.json", &serde_json::json!({"n_layer": 4}))?;
//! assert_eq!(run.read_json::<serde_json::Value>("config.json")?["n_layer"], 4);
//! # drop(run); std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ember_core::Error>(())
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use ember_core::{Error, Result};
use ember_weights::write_atomic;

const LOCK: &str = ".lock";

/// The directories this process holds, so a second `open` shares the lock.
static HELD: Mutex<Vec<(PathBuf, Weak<Held>)>> = Mutex::new(Vec::new());

struct Held {
    path: PathBuf,
    lock: File,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Unlink while still holding the lock; an opener that raced us re-checks the inode.
        let _ = fs::remove_file(self.path.join(LOCK));
        let _ = self.lock.unlock();
    }
}

/// A run directory locked by this process (see the module docs). Cheap to clone; the lock is
/// released when the last clone is dropped.
#[derive(Clone)]
pub struct RunDir {
    held: Arc<Held>,
}

impl std::fmt::Debug for RunDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RunDir").field(&self.held.path).finish()
    }
}

impl RunDir {
    /// Creates `path` if needed, takes its lock, and removes what killed writers left
    /// (temporary files `.NAME.tmp-PID` and checkpoint directories `.step-N.tmp-PID`).
    pub fn open(path: &Path) -> Result<RunDir> {
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let canon = fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|(_, w)| w.strong_count() > 0);
        if let Some(h) = held
            .iter()
            .find(|(p, _)| *p == canon)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(RunDir { held: h });
        }
        let lock = acquire(&canon)?;
        let h = Arc::new(Held {
            path: canon.clone(),
            lock,
        });
        held.push((canon.clone(), Arc::downgrade(&h)));
        drop(held);
        remove_leftovers(&canon);
        remove_leftovers(&canon.join("checkpoints"));
        Ok(RunDir { held: h })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.held.path
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.held.path.join(name)
    }

    /// Writes `bytes` to `name` atomically (temporary file, fsync, rename).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.join(name), bytes)
    }

    /// Writes `value` as pretty JSON to `name`, atomically.
    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::data("RunDir::write_json", format!("{name}: {e}")))?;
        self.write(name, text.as_bytes())
    }

    /// Errors when the directory holds checkpoints of an earlier run, which a fresh run would
    /// mix with its own (resume it instead, or write elsewhere).
    pub fn check_fresh(&self) -> Result<()> {
        match crate::checkpoint::list(&self.join("checkpoints")).pop() {
            Some((step, _)) => Err(Error::data(
                "RunDir",
                format!(
                    "{} holds checkpoints of an earlier run (up to step {step}): resume it, or \
                     write to another directory",
                    self.path().display()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Reads `name` as JSON into `T`.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        RunDir::read_json_in(&self.join(""), name)
    }

    /// [`RunDir::read_json`] without taking the lock: for the ranks of a distributed run other
    /// than 0, which read what rank 0 holds locked.
    pub fn read_json_in<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
        let path = dir.join(name);
        let text = ember_weights::read_text(&path, MAX_JSON, "run directory JSON")?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            format: "json",
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

/// The largest JSON file of a run directory read back (Ember's own are a few KB).
const MAX_JSON: u64 = 64 << 20;

/// Locks `dir/.lock`, taking over a stale one; the error names the process holding it.
fn acquire(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    for _ in 0..16 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {owner}")
                };
                return Err(Error::data(
                    "RunDir::open",
                    format!(
                        "{} is in use by {who} (lock {}): wait for it to finish, or write to \
                         another directory",
                        dir.display(),
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The holder we waited out may have unlinked the file: lock the one at the path.
        if !same_file(&file, &path) {
            continue;
        }
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.rewind().map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
        let _ = file.sync_all();
        return Ok(file);
    }
    Err(Error::data(
        "RunDir::open",
        format!("{}: the lock file keeps changing", path.display()),
    ))
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

/// Removes `.NAME.tmp-PID` files and `.step-N.tmp-PID` directories under `dir` (only the
/// lock holder writes there, so every one is a killed writer's).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !(name.starts_with('.') && name.contains(".tmp-")) {
            continue;
        }
        let p = e.path();
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
            _ => fs::remove_file(&p),
        };
    }
}
