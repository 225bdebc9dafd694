//! Quantized weights: a [`QTensor`] holds a matrix in one of GGML's block formats
//! ([`QFormat`]), exactly as a GGUF file stores it, and is multiplied without being
//! dequantized ([`Tensor::linear_q`](crate::Tensor::linear_q)): on the CPU by integer dot
//! products of the weight blocks with the activations quantized on the fly to 8-bit blocks
//! (the kernel layer, `kernels::qlinear`); elsewhere through the dequantized weight.
//!
//! ```
//! use ember_core::quant::{QFormat, QTensor};
//! use ember_core::{DType, Device, Tensor};
//! let w = Tensor::randn(&[64, 128], DType::F32, Device::Cpu)?; // (out, in)
//! let q = QTensor::quantize(&w, QFormat::Q8_0)?;
//! assert_eq!(q.nbytes(), 64 * 4 * 34); // 4 blocks of 34 bytes per row
//! let x = Tensor::randn(&[3, 128], DType::F32, Device::Cpu)?;
//! let y = x.linear_q(&q, None)?; // (3, 64), ≈ x @ wᵀ
//! let exact = x.matmul(&q.dequantize(DType::F32, Device::Cpu)?.transpose(0, 1)?)?;
//! let norm = |t: &Tensor| t.square()?.sum(&[], false)?.sqrt()?.to_scalar::<f32>();
//! assert!(norm(&y.sub(&exact)?)? < 0.02 * norm(&exact)?); // within the 8-bit rounding
//! # Ok::<(), ember_core::Error>(())
//! ```

pub(crate) mod codec;

use std::any::Any;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::{Error, Result};

/// A GGML block format: a fixed number of values per block, stored as small integer codes
/// with per-block scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum QFormat {
    /// 32 values: 8-bit codes, an f16 scale (8.5 bits per value).
    Q8_0,
    /// 32 values: 4-bit codes around 8, an f16 scale (4.5 bits).
    Q4_0,
    /// 32 values: 4-bit codes, an f16 scale and minimum (5 bits).
    Q4_1,
    /// 32 values: 5-bit codes around 16, an f16 scale (5.5 bits).
    Q5_0,
    /// 32 values: 5-bit codes, an f16 scale and minimum (6 bits).
    Q5_1,
    /// 256 values: 4-bit codes, 6-bit scales and minimums per 32 (4.5 bits).
    Q4K,
    /// 256 values: 5-bit codes, 6-bit scales and minimums per 32 (5.5 bits).
    Q5K,
    /// 256 values: 6-bit codes, 8-bit scales per 16 (6.5625 bits).
    Q6K,
    /// 256 values: 2-bit codes, 4-bit scales and minimums per 16 (2.625 bits). Read only.
    Q2K,
    /// 256 values: 3-bit codes, 6-bit scales per 16 (3.4375 bits). Read only.
    Q3K,
}

impl QFormat {
    /// Every format.
    pub const ALL: [QFormat; 10] = [
        QFormat::Q8_0,
        QFormat::Q4_0,
        QFormat::Q4_1,
        QFormat::Q5_0,
        QFormat::Q5_1,
        QFormat::Q4K,
        QFormat::Q5K,
        QFormat::Q6K,
        QFormat::Q2K,
        QFormat::Q3K,
    ];

    /// True for the formats [`QTensor::quantize`] writes (all but Q2_K and Q3_K, which are
    /// read from files only).
    pub fn can_encode(self) -> bool {
        !matches!(self, QFormat::Q2K | QFormat::Q3K)
    }

    /// Values per block.
    pub fn block_len(self) -> usize {
        match self {
            QFormat::Q4K | QFormat::Q5K | QFormat::Q6K | QFormat::Q2K | QFormat::Q3K => 256,
            _ => 32,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QFormat::Q8_0 => 34,
            QFormat::Q4_0 => 18,
            QFormat::Q4_1 => 20,
            QFormat::Q5_0 => 22,
            QFormat::Q5_1 => 24,
            QFormat::Q4K => 144,
            QFormat::Q5K => 176,
            QFormat::Q6K => 210,
            QFormat::Q2K => 84,
            QFormat::Q3K => 110,
        }
    }

    /// Bits of storage per value.
    pub fn bits_per_value(self) -> f64 {
        8.0 * self.block_bytes() as f64 / self.block_len() as f64
    }

    /// Bits of the integer codes (4, 5, 6 or 8).
    pub fn code_bits(self) -> u32 {
        match self {
            QFormat::Q8_0 => 8,
            QFormat::Q4_0 | QFormat::Q4_1 | QFormat::Q4K => 4,
            QFormat::Q5_0 | QFormat::Q5_1 | QFormat::Q5K => 5,
            QFormat::Q6K => 6,
            QFormat::Q2K => 2,
            QFormat::Q3K => 3,
        }
    }

    /// GGML's type id (`ggml_type`), as GGUF files store it.
    pub fn ggml_type(self) -> u32 {
        match self {
            QFormat::Q4_0 => 2,
            QFormat::Q4_1 => 3,
            QFormat::Q5_0 => 6,
            QFormat::Q5_1 => 7,
            QFormat::Q8_0 => 8,
            QFormat::Q4K => 12,
            QFormat::Q5K => 13,
            QFormat::Q6K => 14,
            QFormat::Q2K => 10,
            QFormat::Q3K => 11,
        }
    }

    /// The format of a GGML type id, if it is one of these.
    pub fn from_ggml_type(id: u32) -> Option<QFormat> {
        QFormat::ALL.into_iter().find(|f| f.ggml_type() == id)
    }

    /// llama.cpp's name, e.g. `"Q4_K"`.
    pub fn name(self) -> &'static str {
        match self {
            QFormat::Q8_0 => "Q8_0",
            QFormat::Q4_0 => "Q4_0",
            QFormat::Q4_1 => "Q4_1",
            QFormat::Q5_0 => "Q5_0",
            QFormat::Q5_1 => "Q5_1",
            QFormat::Q4K => "Q4_K",
            QFormat::Q5K => "Q5_K",
            QFormat::Q6K => "Q6_K",
            QFormat::Q2K => "Q2_K",
            QFormat::Q3K => "Q3_K",
        }
    }

    /// Bytes holding `n` values, if `n` is a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }
}

impl fmt::Display for QFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for QFormat {
    type Err = Error;
    /// Parses llama.cpp's names, any case, with or without the underscore of the K formats
    /// (`q4_k`, `Q4K`, `q8_0`).
    fn from_str(s: &str) -> Result<QFormat> {
        let key = s.to_ascii_uppercase().replace('_', "");
        QFormat::ALL
            .into_iter()
            .find(|f| f.name().replace('_', "") == key)
            .ok_or_else(|| {
                let names: Vec<&str> = QFormat::ALL.iter().map(|f| f.name()).collect();
                Error::data(
                    "QFormat",
                    format!("unknown quantization {s:?}; one of {}", names.join(", ")),
                )
            })
    }
}

/// Decodes whole blocks into `out` (as many values as the blocks hold).
fn decode_into(format: QFormat, bytes: &[u8], out: &mut [f32]) {
    let (n, subs) = (format.block_len(), format.block_len() / 32);
    for (blk, o) in bytes
        .chunks_exact(format.block_bytes())
        .zip(out.chunks_exact_mut(n))
    {
        for s in 0..subs {
            let sub = codec::decode(format, blk, s);
            for (i, v) in o[32 * s..32 * s + 32].iter_mut().enumerate() {
                *v = sub.value(i);
            }
        }
    }
}

/// Dequantizes whole blocks of `format` to f32, each value as llama.cpp computes it; `None`
/// unless `bytes` holds a whole number of blocks.
pub fn dequantize_blocks(format: QFormat, bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(format.block_bytes()) {
        return None;
    }
    let mut out = vec![0f32; bytes.len() / format.block_bytes() * format.block_len()];
    decode_into(format, bytes, &mut out);
    Some(out)
}

/// Bytes owned by the tensor or borrowed from a shared owner (a memory-mapped file).
#[derive(Clone)]
enum Bytes {
    Owned(Arc<Vec<u8>>),
    Shared(Arc<dyn AsRef<[u8]> + Send + Sync>, Range<usize>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(owner, r) => &(**owner).as_ref()[r.clone()],
        }
    }
}

/// A matrix `(rows, cols)` in a GGML block format: each row is `cols / block_len` blocks,
/// rows one after another, as in a GGUF file. Immutable and cheap to clone. On the CPU the
/// blocks are also repacked once, on first use or by [`QTensor::prepare`], into the layout
/// the integer kernels stream.
#[derive(Clone)]
pub struct QTensor {
    format: QFormat,
    shape: [usize; 2],
    bytes: Bytes,
    packed: Arc<KernelCache>,
}

impl fmt::Debug for QTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QTensor({}, {:?})", self.format, self.shape)
    }
}

impl QTensor {
    pub(crate) fn check(
        op: &'static str,
        format: QFormat,
        shape: &[usize],
        len: usize,
    ) -> Result<[usize; 2]> {
        let &[rows, cols] = shape else {
            return Err(Error::shape(
                op,
                &[shape],
                "a quantized tensor is a matrix (rows, cols)",
            ));
        };
        if cols == 0 || !cols.is_multiple_of(format.block_len()) {
            return Err(Error::shape(
                op,
                &[shape],
                format!(
                    "{format} rows hold multiples of {} values, got {cols}",
                    format.block_len()
                ),
            ));
        }
        let need = rows
            .checked_mul(cols)
            .and_then(|n| format.bytes_for(n))
            .ok_or_else(|| Error::shape(op, &[shape], "the size overflows"))?;
        if need != len {
            return Err(Error::data(
                op,
                format!("{format} {shape:?} takes {need} bytes, got {len}"),
            ));
        }
        Ok([rows, cols])
    }

    /// Blocks of `format` for a `(rows, cols)` matrix (the byte count is checked).
    pub fn from_bytes(format: QFormat, shape: &[usize], bytes: Vec<u8>) -> Result<QTensor> {
        let shape = QTensor::check("QTensor::from_bytes", format, shape, bytes.len())?;
        Ok(QTensor::new(format, shape, Bytes::Owned(Arc::new(bytes))))
    }

    /// Blocks held by `owner` (e.g. a memory-mapped file) at `range`, without a copy.
    pub fn from_shared(
        format: QFormat,
        shape: &[usize],
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        range: Range<usize>,
    ) -> Result<QTensor> {
        let total = (*owner).as_ref().len();
        if range.start > range.end || range.end > total {
            return Err(Error::data(
                "QTensor::from_shared",
                format!("bytes {range:?} lie outside the {total} bytes held"),
            ));
        }
        let shape = QTensor::check("QTensor::from_shared", format, shape, range.len())?;
        Ok(QTensor::new(format, shape, Bytes::Shared(owner, range)))
    }

    fn new(format: QFormat, shape: [usize; 2], bytes: Bytes) -> QTensor {
        QTensor {
            format,
            shape,
            bytes,
            packed: Arc::new(KernelCache::default()),
        }
    }

    /// The block format.
    pub fn format(&self) -> QFormat {
        self.format
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> &[usize] {
        &self.shape
    }

    /// The blocks, row after row.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Bytes of the blocks.
    pub fn nbytes(&self) -> usize {
        self.bytes().len()
    }

    fn row_bytes(&self) -> usize {
        self.shape[1] / self.format.block_len() * self.format.block_bytes()
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let row = &self.bytes()[r * rb..(r + 1) * rb];
        let (n, subs) = (self.format.block_len(), self.format.block_len() / 32);
        for (blk, o) in row
            .chunks_exact(self.format.block_bytes())
            .zip(out.chunks_exact_mut(n))
        {
            for s in 0..subs {
                let sub = codec::decode(self.format, blk, s);
                for (i, v) in o[32 * s..32 * s + 32].iter_mut().enumerate() {
                    *v = sub.value(i);
                }
            }
        }
    }

    /// The matrix with its rows reordered: row `i` of the result is row `perm[i]` (blocks
    /// copied, nothing requantized).
    pub fn select_rows(&self, perm: &[usize]) -> Result<QTensor> {
        let rb = self.row_bytes();
        if let Some(&bad) = perm.iter().find(|&&r| r >= self.shape[0]) {
            return Err(Error::Index {
                op: "QTensor::select_rows",
                index: bad as i64,
                size: self.shape[0],
                msg: format!("row {bad} is outside the {} rows", self.shape[0]),
            });
        }
        let src = self.bytes();
        let mut bytes = Vec::with_capacity(perm.len() * rb);
        for &r in perm {
            bytes.extend_from_slice(&src[r * rb..(r + 1) * rb]);
        }
        QTensor::from_bytes(self.format, &[perm.len(), self.shape[1]], bytes)
    }

    /// The slot where the kernel layer keeps its repacked form of the blocks (built once,
    /// shared by clones).
    pub(crate) fn kernel_cache(&self) -> &KernelCache {
        &self.packed
    }
}

/// A value the kernel layer derives from data once and keeps beside it (the repacked blocks
/// of a [`QTensor`]); its type is the kernel layer's own.
#[derive(Default)]
pub(crate) struct KernelCache(OnceLock<Box<dyn Any + Send + Sync>>);

impl KernelCache {
    /// The kept value, made by `make` on first use; `None` if a value of another type is kept.
    pub(crate) fn get_or_init<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}
