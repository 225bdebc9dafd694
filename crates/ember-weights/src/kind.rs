//! What a path holds, told by its first bytes rather than its name, so a loader handed the
//! wrong kind of file says which loader takes it instead of failing deep in a parser.

use std::io::Read;
use std::path::Path;

use ember_core::Error;

/// The kind of a file or directory, by its magic bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Nothing at the path.
    Missing,
    /// A directory; `gguf` lists the GGUF files in it when it has no `config.json`.
    Directory {
        /// `config.json` is there (a Hugging Face model directory).
        config: bool,
        /// GGUF files in it (by name, sorted).
        gguf: Vec<String>,
    },
    /// A GGUF file (`GGUF` magic).
    Gguf,
    /// A safetensors file (an 8-byte header length, then a JSON header).
    Safetensors,
    /// JSON text (`config.json`, `tokenizer.json`, an index).
    Json,
    /// A zip archive: PyTorch's `.bin`/`.pt` since 1.6, or NumPy's `.npz`.
    Zip,
    /// A Python pickle (PyTorch's legacy `.bin`).
    Pickle,
    /// A NumPy `.npy` array.
    Npy,
    /// Anything else (or unreadable).
    Other,
}

/// Reads the first bytes of `path` (or lists it, for a directory) to tell its kind.
///
/// ```
/// use ember_weights::{FileKind, file_kind};
/// let p = std::env::temp_dir().join(format!("kind-{}.bin", std::process::id()));
/// std::fs::write(&p, b"GGUF\x03\0\0\0").unwrap();
/// assert_eq!(file_kind(&p), FileKind::Gguf);
/// ```
pub fn file_kind(path: &Path) -> FileKind {
    let Ok(meta) = std::fs::metadata(path) else {
        return FileKind::Missing;
    };
    if meta.is_dir() {
        let mut gguf: Vec<String> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .take(10_000) // a bound on the listing
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".gguf"))
            .collect();
        gguf.sort();
        return FileKind::Directory {
            config: path.join("config.json").is_file(),
            gguf,
        };
    }
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    kind_of(&head[..n], meta.len())
}

/// The kind of a file of `len` bytes starting with `head`.
fn kind_of(head: &[u8], len: u64) -> FileKind {
    if head.starts_with(b"GGUF") {
        return FileKind::Gguf;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return FileKind::Zip;
    }
    if head.starts_with(b"\x93NUMPY") {
        return FileKind::Npy;
    }
    // Safetensors before pickle: a header of 0x280..0x5ff bytes starts with a pickle's
    // protocol marker (0x80, then 2..=5).
    if head.len() >= 9 {
        let header = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if head[8] == b'{' && header.checked_add(8).is_some_and(|end| end <= len) {
            return FileKind::Safetensors;
        }
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return FileKind::Pickle;
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => FileKind::Json,
        _ => FileKind::Other,
    }
}

impl FileKind {
    /// What a person should do with a file of this kind, naming Ember's loader for it.
    pub fn advice(&self) -> String {
        match self {
            FileKind::Missing => "nothing is there".into(),
            FileKind::Directory { config: true, .. } => {
                "a Hugging Face model directory: load it with from_pretrained \
                 (AutoModelForCausalLM::from_pretrained, or from_path)"
                    .into()
            }
            FileKind::Directory {
                config: false,
                gguf,
            } if !gguf.is_empty() => format!(
                "a directory with no config.json but GGUF files ({}): open one with \
                 GgufFile::open and load it with AutoModelForCausalLM::from_gguf, or pass its \
                 path to AutoModelForCausalLM::from_path",
                gguf.join(", ")
            ),
            FileKind::Directory { .. } => {
                "a directory without config.json or GGUF files: a model directory needs \
                 config.json and safetensors weights"
                    .into()
            }
            FileKind::Gguf => "a GGUF file: open it with GgufFile::open and load it with \
                 AutoModelForCausalLM::from_gguf (or from_path; Tokenizer::from_gguf and \
                 ChatTemplate::from_gguf for its tokenizer and template)"
                .into(),
            FileKind::Safetensors => {
                "a safetensors file: open it with Checkpoint::open, or load its directory \
                 with from_pretrained"
                    .into()
            }
            FileKind::Json => "a JSON file".into(),
            FileKind::Zip => "a zip archive (PyTorch's .bin/.pt or NumPy's .npz): Ember reads \
                 safetensors and GGUF; save it from PyTorch with safetensors \
                 (transformers' save_pretrained does by default)"
                .into(),
            FileKind::Pickle => "a Python pickle (PyTorch's old .bin format), which Ember does \
                 not load (unpickling runs code from the file): convert it to safetensors"
                .into(),
            FileKind::Npy => "a NumPy .npy array".into(),
            FileKind::Other => "not a format Ember recognises".into(),
        }
    }

    /// An error for a `format` loader handed `path` of this kind.
    pub fn wrong_kind(&self, path: &Path, format: &'static str) -> Error {
        Error::Format {
            format,
            path: path.display().to_string(),
            msg: format!("this is {}", self.advice()),
        }
    }
}

/// `Ok` when `path` is of the kind `is_expected` accepts; otherwise an error naming what it is
/// and the loader that takes it. A missing path is left to the caller's own error.
pub(crate) fn expect_kind(
    path: &Path,
    format: &'static str,
    is_expected: impl Fn(&FileKind) -> bool,
) -> ember_core::Result<()> {
    let kind = file_kind(path);
    if kind == FileKind::Missing || is_expected(&kind) {
        return Ok(());
    }
    Err(kind.wrong_kind(path, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_tell_the_kind() {
        assert_eq!(kind_of(b"GGUF\x03\0\0\0", 100), FileKind::Gguf);
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend(b"{}");
        assert_eq!(kind_of(&st, 10), FileKind::Safetensors);
        assert_eq!(kind_of(&st, 9), FileKind::Other, "header past the end");
        assert_eq!(kind_of(b"  {\"a\": 1}", 10), FileKind::Json);
        assert_eq!(kind_of(b"PK\x03\x04rest", 10), FileKind::Zip);
        assert_eq!(kind_of(b"\x80\x02}q", 10), FileKind::Pickle);
        assert_eq!(kind_of(b"\x93NUMPY\x01\0", 10), FileKind::Npy);
        assert_eq!(kind_of(b"", 0), FileKind::Other);
        // A safetensors header of 0x580 bytes starts 80 05, like pickle protocol 5 (a
        // 20-step checkpoint of train_gpt's model was refused as a pickle).
        let mut st = 0x580u64.to_le_bytes().to_vec();
        st.push(b'{');
        assert_eq!(kind_of(&st, 0x588), FileKind::Safetensors);
    }
}
