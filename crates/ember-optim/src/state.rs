//! Optimizer state files: tensors in `prefix.safetensors`, the rest in `prefix.json`, both
//! written atomically.

use std::path::{Path, PathBuf};

use ember_core::{Error, Result, Tensor};
use ember_weights::{Checkpoint, save_safetensors, write_atomic};

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

pub(crate) fn save_state(
    prefix: &Path,
    tensors: &[(String, Tensor)],
    json: &serde_json::Value,
) -> Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let st = with_ext(prefix, ".safetensors");
    if refs.is_empty() {
        // safetensors needs at least a header; an empty map is fine.
        save_safetensors(&st, &[], None, None)?;
    } else {
        save_safetensors(&st, &refs, None, None)?;
    }
    let text = serde_json::to_string_pretty(json).map_err(|e| Error::Data {
        op: "optimizer save",
        msg: e.to_string(),
    })?;
    write_atomic(&with_ext(prefix, ".json"), text.as_bytes())
}

pub(crate) fn load_state(prefix: &Path) -> Result<(Checkpoint, serde_json::Value)> {
    let json_path = with_ext(prefix, ".json");
    let text = ember_weights::read_text(&json_path, 64 << 20, "optimizer state")?;
    let json = serde_json::from_str(&text).map_err(|e| Error::Format {
        format: "optimizer state",
        path: json_path.display().to_string(),
        msg: e.to_string(),
    })?;
    Ok((Checkpoint::open(with_ext(prefix, ".safetensors"))?, json))
}
