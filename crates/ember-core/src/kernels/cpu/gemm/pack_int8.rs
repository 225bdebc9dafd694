//! The layouts of the quantized products: weights repacked once from GGML blocks into
//! records that the integer kernels stream, and activations quantized on the fly to 8-bit
//! blocks.
//!
//! Every format becomes unsigned codes `q` with `w = d * q + m` per 32 values of a row (per
//! 16 for Q6_K), so one kernel serves them all: `Σ w a = d * Σ q a + m * Σ a` with `Σ q a`
//! an integer dot product (u8 × i8, `vpdpbusd`). Rows are interleaved by 16: a record holds
//! one 32-column block of 16 rows, its codes as eight 64-byte vectors (4 columns of each row
//! per vector: lane `r` of a dot product accumulates row `r`), 4-bit codes two to a byte.
//! Symmetric formats (Q8_0, Q4_0, Q5_0, Q6_K) keep no offsets: `m = -z d` for their centre
//! code `z`, so a record streams 18 bytes per 32 values for Q4_0 and 34 for Q8_0, as the
//! file does.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use half::f16;

use super::super::simd::simd_kernel;
use crate::base::quant::{QFormat, QTensor, codec};

/// Rows per record (the lanes of a 512-bit vector of i32).
pub(crate) const ROWS: usize = 16;

/// Activation rows the integer kernels process together (each decoded weight vector is used
/// this many times).
pub(crate) const TILE_M: usize = 8;

/// How a record stores its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codes {
    /// 4-bit codes: vector `p` holds columns `4p..4p+4` in its low nibbles and `4p+16..`
    /// in its high ones (4 vectors).
    Nibble,
    /// 8-bit codes, one scale and offset per 32 columns (8 vectors).
    Byte,
    /// 8-bit codes, a scale and offset per 16 columns (Q6_K, Q2_K, Q3_K).
    Byte16,
}

impl Codes {
    fn of(format: QFormat) -> Codes {
        match format {
            QFormat::Q6K | QFormat::Q2K | QFormat::Q3K => Codes::Byte16,
            f if f.code_bits() == 4 => Codes::Nibble,
            _ => Codes::Byte,
        }
    }

    /// Scale sets per record (1, or 2 for the 16-column halves).
    pub(crate) fn halves(self) -> usize {
        if self == Codes::Byte16 { 2 } else { 1 }
    }

    /// Bytes of a record's codes.
    fn code_bytes(self) -> usize {
        if self == Codes::Nibble { 256 } else { 512 }
    }
}

/// The code every value of a symmetric format is centred on (`w = d * (q - z)`): its
/// records keep no offsets, the kernels add `-z * d * Σa`.
fn zero_of(format: QFormat) -> Option<f32> {
    match format {
        QFormat::Q8_0 => Some(128.0),
        QFormat::Q4_0 => Some(8.0),
        QFormat::Q5_0 => Some(16.0),
        QFormat::Q6K => Some(32.0),
        QFormat::Q3K => Some(4.0),
        _ => None,
    }
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A record's layout.
struct Layout {
    codes: Codes,
    zero: Option<f32>,
}

impl Layout {
    fn scale_bytes(&self) -> usize {
        let sets = if self.zero.is_some() { 1 } else { 2 };
        32 * self.codes.halves() * sets
    }

    fn record_bytes(&self) -> usize {
        self.scale_bytes() + self.codes.code_bytes()
    }
}

/// A weight `(rows, cols)` repacked: records ordered by row group, then by column block.
pub(crate) struct Packed {
    pub rows: usize,
    pub cols: usize,
    pub codes: Codes,
    /// 8-bit codes (Q8_0): the AVX2 kernel takes them by sign and magnitude.
    pub wide: bool,
    /// The centre code of a symmetric format (no offsets stored), or `None` (offsets).
    pub zero: Option<f32>,
    lines: Vec<Line>,
}

impl Packed {
    /// Repacks `w`'s blocks.
    pub(crate) fn new(w: &QTensor) -> Packed {
        let (format, [rows, cols]) = (w.format(), [w.dims()[0], w.dims()[1]]);
        let (codes, zero) = (Codes::of(format), zero_of(format));
        let (groups, blocks) = (rows.div_ceil(ROWS), cols / 32);
        let layout = Layout { codes, zero };
        let rec = layout.record_bytes();
        let mut lines = vec![Line([0; 64]); (groups * blocks * rec).div_ceil(64)];
        // SAFETY: `Line` is 64 plain bytes; the slice covers exactly the vector's memory.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        let bytes: &mut [u8] = unsafe {
            std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64)
        };
        let (bb, per) = (format.block_bytes(), format.block_len() / 32);
        let row_bytes = cols / format.block_len() * bb;
        let src = w.bytes();
        for (i, out) in bytes
            .chunks_exact_mut(rec)
            .take(groups * blocks)
            .enumerate()
        {
            let (g, b) = (i / blocks, i % blocks);
            let (scales, q) = out.split_at_mut(layout.scale_bytes());
            for r in 0..ROWS.min(rows - g * ROWS) {
                let row = g * ROWS + r;
                let at = row * row_bytes + (b / per) * bb;
                let sub = codec::decode(format, &src[at..at + bb], b % per);
                for h in 0..codes.halves() {
                    let d = sub.d[h];
                    let o = 32 * h + 2 * r;
                    scales[o..o + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    if zero.is_none() {
                        let m = sub.m[h] - d * sub.z[h];
                        let o = 32 * codes.halves() + o;
                        scales[o..o + 2].copy_from_slice(&f16::from_f32(m).to_le_bytes());
                    }
                }
                for c in 0..32 {
                    let (kq, j) = (c / 4, c % 4);
                    match codes {
                        Codes::Nibble if kq < 4 => q[64 * kq + 4 * r + j] |= sub.q[c],
                        Codes::Nibble => q[64 * (kq - 4) + 4 * r + j] |= sub.q[c] << 4,
                        _ => q[64 * kq + 4 * r + j] = sub.q[c],
                    }
                }
            }
        }
        Packed {
            rows,
            cols,
            codes,
            wide: format.code_bits() == 8,
            zero,
            lines,
        }
    }

    /// Row groups.
    pub(crate) fn groups(&self) -> usize {
        self.rows.div_ceil(ROWS)
    }

    /// Column blocks of 32.
    pub(crate) fn blocks(&self) -> usize {
        self.cols / 32
    }

    /// Bytes of a record: f16 scales `d[halves][16]`, then (unless symmetric) f16 offsets
    /// `m[halves][16]`, then the codes.
    pub(crate) fn record_bytes(&self) -> usize {
        Layout {
            codes: self.codes,
            zero: self.zero,
        }
        .record_bytes()
    }

    /// Bytes of a record before its codes.
    pub(crate) fn scale_bytes(&self) -> usize {
        Layout {
            codes: self.codes,
            zero: self.zero,
        }
        .scale_bytes()
    }

    /// The records of row group `g`, one per column block.
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks() * self.record_bytes();
        // SAFETY: `lines` holds `groups * len` bytes; `Line` is plain bytes.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        let all = unsafe {
            std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.lines.len() * 64)
        };
        &all[g * len..(g + 1) * len]
    }

    /// Bytes of the repacked weight.
    pub(crate) fn nbytes(&self) -> usize {
        self.lines.len() * 64
    }
}

/// 32 activations as 8-bit codes: `a ≈ scale * q`, with the scaled sums of the codes per
/// 16-column half and in all (`sums[h] = scale * Σ q`).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct ActBlock {
    pub q: [i8; 32],
    pub scale: f32,
    pub sums: [f32; 3],
}

/// Rounds to nearest, ties to even, for `|x| < 2^22` (adding and removing 1.5·2^23 leaves
/// the rounded value; unlike `round_ties_even` this vectorizes without SSE4.1).
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

simd_kernel! {
    /// Quantizes rows of activations (a multiple of 32 each) into `out` (`len / 32` blocks),
    /// each block's scale its largest magnitude over 127, codes rounded to nearest (even).
    pub(crate) fn quantize_rows(x: &[f32], out: &mut [ActBlock]) {
        quantize_row(x, out);
    }
}

#[inline(always)]
fn quantize_row(x: &[f32], out: &mut [ActBlock]) {
    for (x, o) in x.chunks_exact(32).zip(out.iter_mut()) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = [0i32; 2];
        for (h, (q, x)) in o.q.chunks_exact_mut(16).zip(x.chunks_exact(16)).enumerate() {
            for (q, &v) in q.iter_mut().zip(x) {
                let c = round_even(v * inv) as i32;
                *q = c as i8;
                sum[h] += c;
            }
        }
        o.scale = scale;
        o.sums = [
            scale * sum[0] as f32,
            scale * sum[1] as f32,
            scale * (sum[0] + sum[1]) as f32,
        ];
    }
}
