//! Where `scripts/fetch_assets.sh` puts real pretrained weights and texts: the examples and
//! the real-weight tests find them here.

use std::path::PathBuf;

use crate::{Error, Result};

/// The asset cache: `$EMBER_ASSETS`, or `~/.cache/ember/assets`.
pub fn dir() -> PathBuf {
    match std::env::var_os("EMBER_ASSETS") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/ember/assets"),
    }
}

/// The path of an asset (`"smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"`, `"minilm"`,
/// `"shakespeare"`), or an error saying how to fetch it.
///
/// ```no_run
/// let gguf = ember::assets::path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
/// # Ok::<(), ember::Error>(())
/// ```
pub fn path(rel: &str) -> Result<PathBuf> {
    let p = dir().join(rel);
    if p.exists() {
        Ok(p)
    } else {
        Err(Error::io(
            &p,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "asset not found: run `bash scripts/fetch_assets.sh` (or set EMBER_ASSETS)",
            ),
        ))
    }
}

/// The default SmolLM2-135M-Instruct GGUF file.
pub const SMOLLM2_GGUF: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
