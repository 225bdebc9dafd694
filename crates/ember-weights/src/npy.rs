//! NumPy's `.npy` arrays and `.npz` archives of them, read with the `npyz` crate into CPU
//! tensors. The files are hostile until checked: the header's length, nesting and shape are
//! bounded before `npyz` reads them, the data must be as long as the shape says before
//! anything of that size is allocated, an archive's entries are read through a bound, and
//! pickled object arrays are refused (unpickling runs code).

use std::io::{Read, Seek};
use std::path::Path;

use ember_core::{Device, Error, Result, Tensor};

const FORMAT: &str = "npy";
/// Longest header accepted (NumPy's own reader refuses past 10 000 bytes by default).
const MAX_HEADER: usize = 64 << 10;
/// Most dims, and deepest bracket nesting of a header.
const MAX_RANK: usize = 32;
/// Most bytes read out of one `.npz` archive, and most arrays in it.
const MAX_NPZ_BYTES: u64 = 4 << 30;
const MAX_NPZ_ARRAYS: usize = 1 << 16;

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        format: FORMAT,
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Reads a `.npy` file as a CPU tensor: floats of 4, 8 and 2 bytes as F32, F64 and F16,
/// integers of any width as I64 (Ember's integer dtype), booleans as Bool, either byte order,
/// C or Fortran order (a Fortran array comes back as the same values, strided).
///
/// ```
/// // np.save of np.arange(6, dtype=np.float32).reshape(2, 3)
/// let mut file = b"\x93NUMPY\x01\x00".to_vec();
/// let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
/// let padded = format!("{header:<117}\n"); // 10 + 118 bytes: a multiple of 64
/// file.extend((padded.len() as u16).to_le_bytes());
/// file.extend(padded.as_bytes());
/// (0..6).for_each(|i| file.extend((i as f32).to_le_bytes()));
/// let p = std::env::temp_dir().join(format!("doc-{}.npy", std::process::id()));
/// std::fs::write(&p, &file).unwrap();
/// let t = ember_weights::read_npy(&p)?;
/// assert_eq!(t.dims(), &[2, 3]);
/// assert_eq!(t.to_vec::<f32>()?, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    parse(path, &mut file, len)
}

/// Reads every array of a `.npz` archive (`np.savez`, `np.savez_compressed`) as `(name,
/// tensor)` in the archive's order, as [`read_npy`] reads each.
pub fn read_npz(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip_archive(path, file)?;
    if zip.len() > MAX_NPZ_ARRAYS {
        return Err(bad(
            path,
            format!("{} entries, more than {MAX_NPZ_ARRAYS}", zip.len()),
        ));
    }
    let mut out = Vec::new();
    let mut read = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(path, format!("entry {i}: {e}")))?;
        let Some(name) = entry.name().strip_suffix(".npy").map(String::from) else {
            continue; // NumPy ignores other files too
        };
        // Read through a bound: a compressed entry's declared size may lie.
        let budget = MAX_NPZ_BYTES - read;
        let mut bytes = Vec::new();
        (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        read += bytes.len() as u64;
        if read > MAX_NPZ_BYTES {
            return Err(bad(
                path,
                format!("more than {MAX_NPZ_BYTES} bytes of arrays"),
            ));
        }
        let len = bytes.len() as u64;
        let t = parse(&path.join(&name), &mut std::io::Cursor::new(bytes), len)?;
        out.push((name, t));
    }
    Ok(out)
}

fn zip_archive<R: Read + Seek>(path: &Path, r: R) -> Result<npyz::zip::ZipArchive<R>> {
    npyz::zip::ZipArchive::new(r).map_err(|e| bad(path, format!("not a zip archive: {e}")))
}

/// One `.npy` of `len` bytes from `r`, checked before `npyz` reads it.
fn parse<R: Read + Seek>(path: &Path, r: &mut R, len: u64) -> Result<Tensor> {
    let mut pre = [0u8; 12];
    r.read_exact(&mut pre[..10])
        .map_err(|_| bad(path, "shorter than an .npy preamble"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad(path, "no .npy magic (\\x93NUMPY)"));
    }
    let (header_len, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 => {
            r.read_exact(&mut pre[10..12])
                .map_err(|_| bad(path, "truncated preamble"))?;
            (
                u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(path, format!(".npy version {v} is not 1, 2 or 3"))),
    };
    if header_len > MAX_HEADER || (start + header_len) as u64 > len {
        return Err(bad(
            path,
            format!("a header of {header_len} bytes (at most {MAX_HEADER}, within the file)"),
        ));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)
        .map_err(|_| bad(path, "truncated header"))?;
    let depth = header.iter().fold((0i64, 0i64), |(d, max), b| match b {
        b'(' | b'[' | b'{' => (d + 1, max.max(d + 1)),
        b')' | b']' | b'}' => (d - 1, max),
        _ => (d, max),
    });
    if depth.1 > MAX_RANK as i64 {
        return Err(bad(path, format!("header nested {} deep", depth.1)));
    }
    // npyz multiplies the dims unchecked: an overflowing shape is refused first.
    if shape_overflows(&header) {
        return Err(bad(path, "the header's shape overflows 64 bits"));
    }
    let mut whole = pre[..start].to_vec();
    whole.extend(&header);
    let head = guarded(path, || npyz::NpyHeader::from_reader(&whole[..]))?
        .map_err(|e| bad(path, format!("header: {e}")))?;
    let npy = npyz::NpyFile::with_header(head, r);
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => {
            return Err(bad(
                path,
                format!("structured dtype {} is not read", other.descr()),
            ));
        }
    };
    if npy.header().uses_pickled_array() {
        return Err(bad(
            path,
            "an object (pickled) array: refused, unpickling runs code",
        ));
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(path, "a dimension past usize")))
        .collect::<Result<_>>()?;
    if shape.len() > MAX_RANK {
        return Err(bad(
            path,
            format!("{} dims, more than {MAX_RANK}", shape.len()),
        ));
    }
    let count = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| bad(path, format!("shape {shape:?} overflows")))?;
    let size: u64 = descr
        .get(2..)
        .unwrap_or("")
        .parse()
        .map_err(|_| bad(path, format!("dtype {descr}")))?;
    let data = len - (start + header_len) as u64;
    if count.checked_mul(size).is_none_or(|need| need > data) {
        return Err(bad(
            path,
            format!("shape {shape:?} of {descr} needs more than the {data} bytes after the header"),
        ));
    }
    if count == 0 {
        return Err(bad(
            path,
            format!("shape {shape:?} has no elements (Ember refuses zero-sized tensors)"),
        ));
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let io = |e: std::io::Error| bad(path, format!("data: {e}"));
    let kind = descr.get(1..2).unwrap_or("");
    let stored: Vec<usize> = match fortran {
        true => shape.iter().rev().copied().collect(),
        false => shape.clone(),
    };
    let cpu = Device::Cpu;
    let t = guarded(path, || -> Result<Tensor> {
        Ok(match (kind, size) {
            ("f", 4) => Tensor::from_vec(npy.into_vec::<f32>().map_err(io)?, &stored, cpu)?,
            ("f", 8) => Tensor::from_vec(npy.into_vec::<f64>().map_err(io)?, &stored, cpu)?,
            ("f", 2) => Tensor::from_vec(npy.into_vec::<half::f16>().map_err(io)?, &stored, cpu)?,
            ("b", 1) => {
                let v: Vec<bool> = npy.into_vec::<bool>().map_err(io)?;
                Tensor::from_vec(v, &stored, cpu)?
            }
            ("i", 1 | 2 | 4 | 8) | ("u", 1 | 2 | 4) => {
                let v: Vec<i64> = match (kind, size) {
                    ("i", 1) => widen(npy.into_vec::<i8>().map_err(io)?),
                    ("i", 2) => widen(npy.into_vec::<i16>().map_err(io)?),
                    ("i", 4) => widen(npy.into_vec::<i32>().map_err(io)?),
                    ("i", _) => npy.into_vec::<i64>().map_err(io)?,
                    ("u", 1) => widen(npy.into_vec::<u8>().map_err(io)?),
                    ("u", 2) => widen(npy.into_vec::<u16>().map_err(io)?),
                    _ => widen(npy.into_vec::<u32>().map_err(io)?),
                };
                Tensor::from_vec(v, &stored, cpu)?
            }
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "dtype {descr} has no Ember dtype (floats, integers up to u32/i64, bools)"
                    ),
                ));
            }
        })
    })??;
    match fortran {
        true => {
            let dims: Vec<isize> = (0..shape.len() as isize).rev().collect();
            t.permute(&dims)
        }
        false => Ok(t),
    }
}

/// `f()`, with a panic inside the parser turned into an error naming the file.
fn guarded<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| bad(path, "the .npy reader failed on this input"))
}

/// True when the numbers of the header's `shape` tuple multiply past `u64`.
fn shape_overflows(header: &[u8]) -> bool {
    let text = String::from_utf8_lossy(header);
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return false; // npyz reports the missing key
    };
    let rest = &text[at..];
    let tuple = rest.split(')').next().unwrap_or("");
    let mut product: u64 = 1;
    for part in tuple
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
    {
        match part
            .parse::<u64>()
            .ok()
            .and_then(|d| product.checked_mul(d))
        {
            Some(p) => product = p,
            None => return true,
        }
    }
    false
}

fn widen<T: Into<i64>>(v: Vec<T>) -> Vec<i64> {
    v.into_iter().map(Into::into).collect()
}
