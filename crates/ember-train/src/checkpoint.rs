//! Training checkpoints: one directory per step, written into a temporary directory, synced,
//! then renamed into place, so a crash never leaves a torn checkpoint and never costs the
//! last good one.

use std::fs;
use std::path::{Path, PathBuf};

use ember_core::{Error, Result};
use ember_nn::{LoadOptions, VarStore};
use ember_optim::Optimizer;
use ember_weights::{Checkpoint, write_atomic};

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

/// The directory name of a step's checkpoint.
pub fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

/// Writes model weights (HF names), optimizer state and `trainer` (step, RNG, ...) as
/// `root/step-NNNNNNNN`, atomically; then keeps only the newest `keep` checkpoints.
pub fn save(
    root: &Path,
    step: u64,
    store: &VarStore,
    opt: &dyn Optimizer,
    trainer: &serde_json::Value,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let tmp = root.join(format!(".step-{step:08}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    store.save(&tmp.join("model.safetensors"), None)?;
    opt.save(&tmp.join("optimizer"))?;
    let text = serde_json::to_string_pretty(trainer)
        .map_err(|e| Error::data("checkpoint", e.to_string()))?;
    // trainer.json last: its presence marks a complete checkpoint.
    write_atomic(&tmp.join("trainer.json"), text.as_bytes())?;
    let dst = step_dir(root, step);
    if dst.exists() {
        fs::remove_dir_all(&dst).map_err(|e| io(&dst, e))?;
    }
    fs::rename(&tmp, &dst).map_err(|e| io(&dst, e))?;
    if let Ok(d) = fs::File::open(root) {
        let _ = d.sync_all();
    }
    prune(root, keep)?;
    Ok(dst)
}

/// Complete checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
            e.path()
                .join("trainer.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The newest complete checkpoint under `root`.
pub fn latest(root: &Path) -> Option<PathBuf> {
    list(root).pop().map(|(_, p)| p)
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = list(root);
    let extra = all.len().saturating_sub(keep.max(1));
    for (_, p) in &all[..extra] {
        fs::remove_dir_all(p).map_err(|e| io(p, e))?;
    }
    // Leftovers of writers that crashed.
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(".step-") && !name.ends_with(&format!("-{}", std::process::id())) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Loads a checkpoint directory into `store` and `opt`; returns its `trainer.json`.
pub fn load(dir: &Path, store: &VarStore, opt: &mut dyn Optimizer) -> Result<serde_json::Value> {
    let ckpt = Checkpoint::open(dir.join("model.safetensors"))?;
    store.load(&ckpt, &LoadOptions::default())?;
    opt.load(&dir.join("optimizer"))?;
    let path = dir.join("trainer.json");
    let text = ember_weights::read_text(&path, 64 << 20, "trainer.json")?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        format: "trainer.json",
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}
