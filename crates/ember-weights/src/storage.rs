//! A file's bytes: memory-mapped from disk, or held in memory (a download, as in the browser,
//! where there is no file to map).

use memmap2::Mmap;

/// The bytes a checkpoint or GGUF file is read from.
pub(crate) enum Storage {
    /// A read-only map of a file.
    Mapped(Mmap),
    /// Bytes held in memory.
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}
