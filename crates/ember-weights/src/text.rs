//! Small text files from outside (configs, indexes, tokenizer files), read with a bound: the
//! size is checked before anything is read, and reading stops past the bound (a device or a
//! pipe reports no size).

use std::io::Read;
use std::path::Path;

use ember_core::{Error, Result};

/// The text of `path`, at most `limit` bytes of UTF-8, else an error naming the file, its
/// `format` (`"config.json"`, ...) and the limit.
///
/// ```
/// let p = std::env::temp_dir().join(format!("read-text-{}.json", std::process::id()));
/// std::fs::write(&p, "{}").unwrap();
/// assert_eq!(ember_weights::read_text(&p, 16, "config.json")?, "{}");
/// assert!(ember_weights::read_text(&p, 1, "config.json").is_err());
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn read_text(path: &Path, limit: u64, format: &'static str) -> Result<String> {
    let too_large = |len: u64| Error::Format {
        format,
        path: path.display().to_string(),
        msg: format!("{len} bytes is more than the {limit} a {format} may have"),
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| Error::Format {
        format,
        path: path.display().to_string(),
        msg: format!("not UTF-8: {e}"),
    })
}
