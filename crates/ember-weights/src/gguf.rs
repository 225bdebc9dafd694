//! GGUF (v2, v3): header, metadata, tensor infos, and tensors dequantized to Ember tensors.
//! Every read is bounds-checked; sizes are bounded before anything is allocated.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ember_core::quant::{QFormat, QTensor};
use ember_core::{DType, Device, Error, Result, Tensor};
use memmap2::Mmap;

use crate::FileKind;
use crate::quant::dequantize;
use crate::storage::Storage;

const FORMAT: &str = "gguf";
/// Bounds that no real file comes near; a header claiming more is hostile or corrupt.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KVS: u64 = 1 << 20;
const MAX_DIMS: u32 = 8;
const MAX_DEPTH: usize = 4;

/// GGML tensor types Ember reads: plain floats, or one of the block formats of
/// [`QFormat`] (kept quantized by [`GgufFile::load_quantized`], or dequantized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum GgufType {
    F32,
    F16,
    BF16,
    Quant(QFormat),
}

impl GgufType {
    fn from_id(id: u32) -> Option<GgufType> {
        Some(match id {
            0 => GgufType::F32,
            1 => GgufType::F16,
            30 => GgufType::BF16,
            _ => GgufType::Quant(QFormat::from_ggml_type(id)?),
        })
    }

    /// GGML's type id.
    pub fn id(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::BF16 => 30,
            GgufType::Quant(f) => f.ggml_type(),
        }
    }

    /// Bytes holding `n` elements, if `n` is a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        match self {
            GgufType::F32 => n.checked_mul(4),
            GgufType::F16 | GgufType::BF16 => n.checked_mul(2),
            GgufType::Quant(f) => f.bytes_for(n),
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as u64, for any integer type that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as f64, for any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Shape in PyTorch order (GGUF stores the innermost dim first; this is reversed).
    pub shape: Vec<usize>,
    /// Storage type.
    pub ty: GgufType,
    /// Absolute byte range in the file.
    range: (usize, usize),
}

/// An opened GGUF file: metadata and tensor infos parsed and checked, data memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Storage>,
    /// The format version (2 or 3).
    pub version: u32,
    /// Metadata key–value pairs.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {}, the file has {}",
                    self.pos,
                    self.b.len()
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }

    fn len(&mut self, what: &str, elem_size: usize) -> std::result::Result<usize, String> {
        let n = self.u64(what)?;
        let remaining = (self.b.len() - self.pos) as u64;
        // Each element needs at least `elem_size` bytes: a larger count is a lie.
        if n.saturating_mul(elem_size.max(1) as u64) > remaining {
            return Err(format!(
                "{what} claims {n} elements at offset {}, more than the {remaining} bytes left",
                self.pos
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.len(what, 1)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn value(&mut self, ty: u32, depth: usize) -> std::result::Result<GgufValue, String> {
        Ok(match ty {
            0 => GgufValue::U8(self.arr::<1>("u8")?[0]),
            1 => GgufValue::I8(self.arr::<1>("i8")?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.arr("u16")?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.arr("i16")?)),
            4 => GgufValue::U32(self.u32("u32")?),
            5 => GgufValue::I32(i32::from_le_bytes(self.arr("i32")?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.arr("f32")?)),
            7 => match self.arr::<1>("bool")?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(format!("bool value {b} is neither 0 nor 1")),
            },
            8 => GgufValue::String(self.string("string")?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err("arrays nested too deeply".into());
                }
                let elem = self.u32("array type")?;
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(format!("unknown array element type {t}")),
                };
                let n = self.len("array length", min_size)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64("u64")?),
            11 => GgufValue::I64(i64::from_le_bytes(self.arr("i64")?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.arr("f64")?)),
            t => return Err(format!("unknown metadata value type {t}")),
        })
    }
}

impl GgufFile {
    /// Opens and checks a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        // Another kind of file (or a directory) is named with its loader; unknown bytes go
        // to the parser, which says what is wrong with them.
        crate::kind::expect_kind(path, FORMAT, |k| {
            matches!(k, FileKind::Gguf | FileKind::Other)
        })?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map; the file must not change while it is open (as any mmap loader).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (version, metadata, tensors) = parse(&map).map_err(|msg| Error::Format {
            format: FORMAT,
            path: path.display().to_string(),
            msg,
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map: Arc::new(Storage::Mapped(map)),
            version,
            metadata,
            tensors,
        })
    }

    /// Reads and checks a GGUF file held in memory (a download, where there is no file to
    /// map, as in the browser); `name` stands for the path in errors and [`GgufFile::path`].
    ///
    /// ```
    /// # use ember_weights::GgufFile;
    /// assert!(GgufFile::from_bytes(b"not a gguf".to_vec(), "download.gguf").is_err());
    /// ```
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<GgufFile> {
        let path = name.into();
        let (version, metadata, tensors) = parse(&bytes).map_err(|msg| Error::Format {
            format: FORMAT,
            path: path.display().to_string(),
            msg,
        })?;
        Ok(GgufFile {
            path,
            map: Arc::new(Storage::Owned(bytes)),
            version,
            metadata,
            tensors,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A tensor's info by name.
    pub fn info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Dequantizes tensor `name` to a tensor of `dtype` on `device`.
    pub fn load(&self, name: &str, device: Device, dtype: DType) -> Result<Tensor> {
        load_tensor(&self.path, &self.map, &self.tensors, name, device, dtype)
    }

    /// Tensor `name` in its block format, sharing the mapped file (no copy): `None` for a
    /// tensor stored as plain floats; an error for a missing one or a shape that is not a
    /// matrix of whole blocks.
    pub fn load_quantized(&self, name: &str) -> Result<Option<QTensor>> {
        load_quantized(&self.path, &self.map, &self.tensors, name)
    }

    /// The tensors without the metadata: a cheap handle on the same mapped file that can
    /// outlive this value (for a model that reads its parameters one by one as it is built).
    pub fn tensor_data(&self) -> GgufTensors {
        GgufTensors {
            path: self.path.clone(),
            map: self.map.clone(),
            tensors: self.tensors.clone(),
        }
    }
}

/// A GGUF file's tensors (infos and mapped data) without its metadata; see
/// [`GgufFile::tensor_data`].
#[derive(Clone)]
pub struct GgufTensors {
    path: PathBuf,
    map: Arc<Storage>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
}

impl GgufTensors {
    /// The file the tensors are mapped from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dequantizes tensor `name` to a tensor of `dtype` on `device`.
    pub fn load(&self, name: &str, device: Device, dtype: DType) -> Result<Tensor> {
        load_tensor(&self.path, &self.map, &self.tensors, name, device, dtype)
    }

    /// Tensor `name` in its block format; see [`GgufFile::load_quantized`].
    pub fn load_quantized(&self, name: &str) -> Result<Option<QTensor>> {
        load_quantized(&self.path, &self.map, &self.tensors, name)
    }
}

fn find<'a>(path: &Path, tensors: &'a [GgufTensorInfo], name: &str) -> Result<&'a GgufTensorInfo> {
    tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::Data {
            op: "gguf load",
            msg: format!("tensor {name} is not in {}", path.display()),
        })
}

/// The file's bytes as a [`QTensor`] can share them.
struct MapBytes(Arc<Storage>);

impl AsRef<[u8]> for MapBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn load_quantized(
    path: &Path,
    map: &Arc<Storage>,
    tensors: &[GgufTensorInfo],
    name: &str,
) -> Result<Option<QTensor>> {
    let info = find(path, tensors, name)?;
    let GgufType::Quant(format) = info.ty else {
        return Ok(None);
    };
    // GGUF's innermost dim is a row; any further dims stack rows.
    let cols = *info.shape.last().expect("rank >= 1");
    let rows = info.shape[..info.shape.len() - 1].iter().product::<usize>();
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(MapBytes(map.clone()));
    QTensor::from_shared(format, &[rows, cols], owner, info.range.0..info.range.1)
        .map(Some)
        .map_err(|e| Error::Format {
            format: FORMAT,
            path: path.display().to_string(),
            msg: format!("tensor {name}: {e}"),
        })
}

fn load_tensor(
    path: &Path,
    map: &[u8],
    tensors: &[GgufTensorInfo],
    name: &str,
    device: Device,
    dtype: DType,
) -> Result<Tensor> {
    let info = find(path, tensors, name)?;
    let bytes = &map[info.range.0..info.range.1];
    let n: usize = info.shape.iter().product();
    let values = dequantize(info.ty, bytes, n).ok_or_else(|| Error::Format {
        format: FORMAT,
        path: path.display().to_string(),
        msg: format!(
            "tensor {name}: {} bytes do not hold {n} {:?} values",
            bytes.len(),
            info.ty
        ),
    })?;
    Tensor::from_vec(values, &info.shape, Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

type Parsed = (u32, BTreeMap<String, GgufValue>, Vec<GgufTensorInfo>);

fn parse(b: &[u8]) -> std::result::Result<Parsed, String> {
    let mut r = Reader { b, pos: 0 };
    if r.take(4, "magic")? != b"GGUF" {
        return Err("not a GGUF file (bad magic)".into());
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version} is not supported (2 and 3 are)"
        ));
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    if n_tensors > MAX_TENSORS || n_kv > MAX_KVS {
        return Err(format!(
            "header claims {n_tensors} tensors and {n_kv} metadata entries"
        ));
    }
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32("metadata type")?;
        let value = r.value(ty, 0).map_err(|e| format!("metadata {key}: {e}"))?;
        metadata.insert(key, value);
    }
    let mut raw = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32("tensor rank")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!(
                "tensor {name}: rank {n_dims} is outside 1..={MAX_DIMS}"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = r.u64("tensor dim")?;
            dims.push(usize::try_from(d).map_err(|_| format!("tensor {name}: dim {d} too large"))?);
        }
        let type_id = r.u32("tensor type")?;
        let ty = GgufType::from_id(type_id)
            .ok_or_else(|| format!("tensor {name}: GGML type {type_id} is not supported"))?;
        let offset = r.u64("tensor offset")?;
        let _ = i;
        raw.push((name, dims, ty, offset));
    }
    let align = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => v.as_u64().ok_or("general.alignment is not an integer")?,
    };
    if align == 0 || !align.is_power_of_two() || align > 1 << 16 {
        return Err(format!(
            "alignment {align} is not a power of two up to 65536"
        ));
    }
    let data_start = (r.pos as u64).div_ceil(align) * align;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, ty, offset) in raw {
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("tensor {name}: dims {dims:?} overflow or are empty"))?;
        let size = ty
            .bytes_for(n)
            .ok_or_else(|| format!("tensor {name}: {n} elements are not whole {ty:?} blocks"))?;
        if !offset.is_multiple_of(align) {
            return Err(format!(
                "tensor {name}: offset {offset} is not aligned to {align}"
            ));
        }
        let start = data_start
            .checked_add(offset)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| format!("tensor {name}: offset {offset} overflows"))?;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| {
                format!(
                    "tensor {name}: bytes {start}..{} lie outside the file ({} bytes)",
                    start.saturating_add(size),
                    b.len()
                )
            })?;
        let shape: Vec<usize> = dims.into_iter().rev().collect();
        tensors.push(GgufTensorInfo {
            name,
            shape,
            ty,
            range: (start, end),
        });
    }
    let mut by_start: Vec<&GgufTensorInfo> = tensors.iter().collect();
    by_start.sort_by_key(|t| t.range.0);
    for w in by_start.windows(2) {
        if w[1].range.0 < w[0].range.1 {
            return Err(format!("tensors {} and {} overlap", w[0].name, w[1].name));
        }
    }
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("tensor {} appears twice", w[0]));
    }
    Ok((version, metadata, tensors))
}
