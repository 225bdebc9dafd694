//! safetensors: memory-mapped lazy loading (single or sharded) and atomic saving.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use ember_core::{DType, Device, Error, Result, Tensor, bf16, f16};
use memmap2::Mmap;

use crate::storage::Storage;
use safetensors::{Dtype, SafeTensors, View};

use crate::atomic::write_atomic;

const FORMAT: &str = "safetensors";

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        format: FORMAT,
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// The largest `*.index.json` accepted (a 400B-parameter model's is ~2 MB).
const MAX_INDEX: u64 = 64 << 20;

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

/// Where one tensor's bytes lie, checked against the file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    stored: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

struct Mapped {
    path: PathBuf,
    map: Storage,
}

/// A safetensors checkpoint, opened lazily: tensors are read from the memory map only when
/// [`Checkpoint::load`] asks for them.
///
/// ```no_run
/// use ember_weights::Checkpoint;
/// use ember_core::{DType, Device};
/// let ckpt = Checkpoint::open("model_dir")?; // model.safetensors or a sharded index
/// let w = ckpt.load("embeddings.word_embeddings.weight", Device::Cpu, Some(DType::F32))?;
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct Checkpoint {
    files: Vec<Mapped>,
    entries: BTreeMap<String, Entry>,
    metadata: HashMap<String, String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field(
                "files",
                &self.files.iter().map(|m| &m.path).collect::<Vec<_>>(),
            )
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl Checkpoint {
    /// Opens a `.safetensors` file, or a directory holding `model.safetensors.index.json`
    /// (sharded) or `model.safetensors`.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join("model.safetensors.index.json");
            if index.exists() {
                return Checkpoint::open_index(&index);
            }
            let file = path.join("model.safetensors");
            if !file.exists() {
                return Err(format_err(
                    path,
                    format!(
                        "no model.safetensors or model.safetensors.index.json in it: it is {}",
                        crate::file_kind(path).advice()
                    ),
                ));
            }
            return Checkpoint::open_files(&[file]);
        }
        if path.extension().is_some_and(|e| e == "json") {
            return Checkpoint::open_index(path);
        }
        Checkpoint::open_files(&[path.to_path_buf()])
    }

    /// Opens a sharded checkpoint from its `*.index.json` (`{"weight_map": {name: file}}`).
    pub fn open_index(index: &Path) -> Result<Checkpoint> {
        let text = crate::read_text(index, MAX_INDEX, "safetensors index")?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format_err(index, format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| format_err(index, "no \"weight_map\" object"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<String> = Vec::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| format_err(index, format!("shard of {name} is not a string")))?;
            // A shard name is a plain file name beside the index, never a path out of it.
            if file.is_empty() || file.contains(['/', '\\']) || file == ".." || file == "." {
                return Err(format_err(
                    index,
                    format!("shard name {file:?} is not a plain file name"),
                ));
            }
            if !shards.iter().any(|s| s == file) {
                shards.push(file.to_string());
            }
        }
        let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
        let ckpt = Checkpoint::open_files(&paths)?;
        for (name, file) in map {
            let want = shards
                .iter()
                .position(|s| Some(s.as_str()) == file.as_str());
            match ckpt.entries.get(name) {
                Some(e) if Some(e.file) == want => {}
                _ => {
                    return Err(format_err(
                        index,
                        format!("tensor {name} is not in its shard {file}"),
                    ));
                }
            }
        }
        Ok(ckpt)
    }

    /// Opens one or more safetensors files as one checkpoint (names must not repeat).
    pub fn open_files(paths: &[PathBuf]) -> Result<Checkpoint> {
        let mut files = Vec::new();
        let mut entries = BTreeMap::new();
        let mut metadata = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            crate::kind::expect_kind(path, FORMAT, |k| {
                matches!(k, crate::FileKind::Safetensors | crate::FileKind::Other)
            })?;
            let file = File::open(path).map_err(|e| io_err(path, e))?;
            // SAFETY: the map is read-only; like every mmap-based loader, we assume the file
            // is not truncated or rewritten by another process while the checkpoint is open.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
            let file = Mapped {
                path: path.clone(),
                map: Storage::Mapped(map),
            };
            index_file(i, file, &mut files, &mut entries, &mut metadata)?;
        }
        Ok(Checkpoint {
            files,
            entries,
            metadata,
        })
    }

    /// A safetensors file held in memory (a download, as in the browser, where there is no
    /// file to map), checked as [`Checkpoint::open`] checks a file; `name` stands for the path
    /// in errors.
    ///
    /// ```
    /// # use ember_weights::Checkpoint;
    /// assert!(Checkpoint::from_bytes(b"junk".to_vec(), "model.safetensors").is_err());
    /// ```
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Checkpoint> {
        let (mut files, mut entries, mut metadata) = (Vec::new(), BTreeMap::new(), HashMap::new());
        let file = Mapped {
            path: name.into(),
            map: Storage::Owned(bytes),
        };
        index_file(0, file, &mut files, &mut entries, &mut metadata)?;
        Ok(Checkpoint {
            files,
            entries,
            metadata,
        })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// True when the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The stored shape of `name`.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The `__metadata__` string map of the file(s).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Reads `name` onto `device`, converted to `dtype` (or kept as stored, with integer
    /// types widened to I64).
    pub fn load(&self, name: &str, device: Device, dtype: Option<DType>) -> Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| Error::Data {
            op: "load",
            msg: format!("tensor {name} is not in the checkpoint"),
        })?;
        let file = &self.files[e.file];
        let bytes = file.map.get(e.start..e.end).ok_or_else(|| {
            format_err(&file.path, format!("tensor {name} lies outside the file"))
        })?;
        let t = decode(bytes, e.stored, &e.shape)
            .map_err(|msg| format_err(&file.path, format!("tensor {name}: {msg}")))?;
        let t = match dtype {
            Some(d) => t.to_dtype(d)?,
            None => t,
        };
        t.to_device(device)
    }
}

/// Reads file `i`'s header into `entries` and `metadata` (every tensor's byte range checked
/// against the file) and keeps the file.
fn index_file(
    i: usize,
    file: Mapped,
    files: &mut Vec<Mapped>,
    entries: &mut BTreeMap<String, Entry>,
    metadata: &mut HashMap<String, String>,
) -> Result<()> {
    let (path, map) = (&file.path, &file.map);
    let (header_len, meta) =
        SafeTensors::read_metadata(map).map_err(|e| format_err(path, format!("{e}")))?;
    let data_start = 8 + header_len;
    if let Some(m) = meta.metadata() {
        metadata.extend(m.clone());
    }
    for (name, info) in meta.tensors() {
        let (s, e) = info.data_offsets;
        let (start, end) = (data_start + s, data_start + e);
        if end > map.len() || start > end {
            return Err(format_err(
                path,
                format!("tensor {name}: bytes {start}..{end} outside the file"),
            ));
        }
        let entry = Entry {
            file: i,
            stored: info.dtype,
            shape: info.shape.clone(),
            start,
            end,
        };
        if entries.insert(name.clone(), entry).is_some() {
            return Err(format_err(
                path,
                format!("tensor {name} appears in two shards"),
            ));
        }
    }
    files.push(file);
    Ok(())
}

fn le<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

/// Host bytes of a stored dtype to a CPU tensor.
fn decode(bytes: &[u8], dtype: Dtype, shape: &[usize]) -> std::result::Result<Tensor, String> {
    let dev = Device::Cpu;
    if shape.contains(&0) {
        return Err(format!(
            "shape {shape:?} is empty; empty tensors are not supported"
        ));
    }
    let r = match dtype {
        Dtype::F32 => Tensor::from_vec(le(bytes, f32::from_le_bytes), shape, dev),
        Dtype::F64 => Tensor::from_vec(le(bytes, f64::from_le_bytes), shape, dev),
        Dtype::F16 => Tensor::from_vec(
            le(bytes, |b| f16::from_bits(u16::from_le_bytes(b))),
            shape,
            dev,
        ),
        Dtype::BF16 => Tensor::from_vec(
            le(bytes, |b| bf16::from_bits(u16::from_le_bytes(b))),
            shape,
            dev,
        ),
        Dtype::I64 => Tensor::from_vec(le(bytes, i64::from_le_bytes), shape, dev),
        Dtype::I32 => Tensor::from_vec(le(bytes, |b| i32::from_le_bytes(b) as i64), shape, dev),
        Dtype::I16 => Tensor::from_vec(le(bytes, |b| i16::from_le_bytes(b) as i64), shape, dev),
        Dtype::I8 => Tensor::from_vec(bytes.iter().map(|&b| b as i8 as i64).collect(), shape, dev),
        Dtype::U8 => Tensor::from_vec(bytes.iter().map(|&b| b as i64).collect(), shape, dev),
        Dtype::BOOL => Tensor::from_vec(bytes.iter().map(|&b| b != 0).collect(), shape, dev),
        other => return Err(format!("dtype {other:?} is not supported")),
    };
    r.map_err(|e| e.to_string())
}

/// One tensor's bytes, ready for the safetensors serializer.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn encode(t: &Tensor, dtype: DType) -> Result<Bytes> {
    let t = t.detach().to_device(Device::Cpu)?.to_dtype(dtype)?;
    let (st, data): (Dtype, Vec<u8>) = match dtype {
        DType::F32 => (
            Dtype::F32,
            t.to_vec::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            Dtype::F64,
            t.to_vec::<f64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            Dtype::F16,
            t.to_vec::<f16>()?
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            Dtype::BF16,
            t.to_vec::<bf16>()?
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            Dtype::I64,
            t.to_vec::<i64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::Bool => (
            Dtype::BOOL,
            t.to_vec::<bool>()?.into_iter().map(u8::from).collect(),
        ),
    };
    Ok(Bytes {
        dtype: st,
        shape: t.shape(),
        data,
    })
}

/// Saves named tensors as one safetensors file, atomically (temp file, fsync, rename).
/// Float tensors are converted to `float_dtype` when given; other dtypes are kept.
///
/// ```
/// # use ember_core::{Tensor, Device, DType};
/// # let dir = std::env::temp_dir().join(format!("ember-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let w = Tensor::ones(&[2, 3], DType::F32, Device::Cpu)?;
/// let path = dir.join("weights.safetensors");
/// ember_weights::save_safetensors(&path, &[("layer.weight", &w)], Some(DType::F16), None)?;
/// let back = ember_weights::Checkpoint::open(&path)?.load("layer.weight", Device::Cpu, None)?;
/// assert_eq!(back.dtype(), DType::F16);
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn save_safetensors(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    float_dtype: Option<DType>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dtype = match float_dtype {
            Some(d) if t.dtype().is_float() => d,
            _ => t.dtype(),
        };
        encoded.push((name.to_string(), encode(t, dtype)?));
    }
    let bytes = safetensors::serialize(encoded.iter().map(|(n, b)| (n.as_str(), b)), metadata)
        .map_err(|e| format_err(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &bytes)
}
