//! The GGML block formats, element by element: each format's blocks decoded into 32-element
//! sub-blocks (what dequantization and the kernels' repacking both read), and encoded from
//! f32 (what `quantize` writes). Layouts follow llama.cpp's `ggml-common.h`; values are
//! checked against the `gguf` Python package in the tests.

use half::f16;

use super::QFormat;

/// 32 elements of a block as unsigned codes: element `i` is `d[h] * (q[i] - z[h]) + m[h]`
/// with `h = i / 16` (the halves differ only in Q6_K, whose scales cover 16 elements).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sub {
    pub q: [u8; 32],
    pub d: [f32; 2],
    pub z: [f32; 2],
    pub m: [f32; 2],
}

impl Sub {
    /// Element `i` as llama.cpp's dequantization computes it (the same f32 operations).
    #[inline]
    pub fn value(&self, i: usize) -> f32 {
        let h = i / 16;
        self.d[h] * (self.q[i] as f32 - self.z[h]) + self.m[h]
    }
}

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn put_half(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// Q4_K's and Q5_K's packed 6-bit (scale, min) pair `j` of a super-block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit (scale, min) pairs as `scale_min_k4` reads them.
fn pack_scale_min_k4(sc: &[u8; 8], mn: &[u8; 8], out: &mut [u8]) {
    for j in 0..4 {
        out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
    }
}

fn same(d: f32, z: f32, m: f32) -> ([f32; 2], [f32; 2], [f32; 2]) {
    ([d; 2], [z; 2], [m; 2])
}

/// Sub-block `s` (of `format.block_len() / 32`) of one block `b`.
#[allow(clippy::needless_range_loop)] // element j and j + 16 come from one byte
pub(crate) fn decode(format: QFormat, b: &[u8], s: usize) -> Sub {
    let mut out = Sub::default();
    let (d, z, m) = match format {
        QFormat::Q8_0 => {
            for (q, &v) in out.q.iter_mut().zip(&b[2..34]) {
                *q = (v as i8 as i16 + 128) as u8;
            }
            same(half(b, 0), 128.0, 0.0)
        }
        QFormat::Q4_0 | QFormat::Q4_1 => {
            let (qs, d, z, m) = match format {
                QFormat::Q4_0 => (&b[2..18], half(b, 0), 8.0, 0.0),
                _ => (&b[4..20], half(b, 0), 0.0, half(b, 2)),
            };
            for j in 0..16 {
                out.q[j] = qs[j] & 0xF;
                out.q[j + 16] = qs[j] >> 4;
            }
            same(d, z, m)
        }
        QFormat::Q5_0 | QFormat::Q5_1 => {
            let (at, d, z, m) = match format {
                QFormat::Q5_0 => (2, half(b, 0), 16.0, 0.0),
                _ => (4, half(b, 0), 0.0, half(b, 2)),
            };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let qs = &b[at + 4..at + 20];
            for j in 0..16 {
                out.q[j] = (qs[j] & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                out.q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            }
            same(d, z, m)
        }
        QFormat::Q4K | QFormat::Q5K => {
            let (dd, dmin) = (half(b, 0), half(b, 2));
            let (sc, mn) = scale_min_k4(s, &b[4..16]);
            // Sub-blocks 2c and 2c + 1 share 32 bytes: low nibbles, then high nibbles.
            let (c, shift) = (s / 2, 4 * (s % 2) as u32);
            let (qs, qh) = match format {
                QFormat::Q4K => (&b[16 + 32 * c..48 + 32 * c], None),
                _ => (&b[48 + 32 * c..80 + 32 * c], Some(&b[16..48])),
            };
            for l in 0..32 {
                let hi = qh.map_or(0, |h| ((h[l] >> s) & 1) << 4);
                out.q[l] = ((qs[l] >> shift) & 0xF) | hi;
            }
            same(dd * sc as f32, 0.0, -(dmin * mn as f32))
        }
        QFormat::Q6K => {
            // 128-element halves: 64 bytes of low nibbles, 32 of 2-bit highs, 8 scales.
            let (hf, part) = (s / 4, s % 4);
            let ql = &b[64 * hf..64 * hf + 64];
            let qh = &b[128 + 32 * hf..160 + 32 * hf];
            let scales = &b[192 + 8 * hf..200 + 8 * hf];
            let dd = half(b, 208);
            for l in 0..32 {
                let low = match part {
                    0 => ql[l] & 0xF,
                    1 => ql[l + 32] & 0xF,
                    2 => ql[l] >> 4,
                    _ => ql[l + 32] >> 4,
                };
                out.q[l] = low | (((qh[l] >> (2 * part)) & 3) << 4);
            }
            let sc = |i: usize| dd * scales[i] as i8 as f32;
            ([sc(2 * part), sc(2 * part + 1)], [32.0; 2], [0.0; 2])
        }
        QFormat::Q2K | QFormat::Q3K => decode_low_k(format, b, s, &mut out.q),
    };
    (out.d, out.z, out.m) = (d, z, m);
    out
}

/// Q2_K and Q3_K sub-block `s`: codes into `q`, and (d, z, m) per 16-value half.
type Affine = ([f32; 2], [f32; 2], [f32; 2]);

fn decode_low_k(format: QFormat, b: &[u8], s: usize, q: &mut [u8; 32]) -> Affine {
    // 128-value halves of 32 code bytes; sub-block s takes bits 2j..2j+2 of its half's bytes.
    let (n, j) = (s / 4, s % 4);
    if format == QFormat::Q2K {
        let (scales, qs) = (&b[0..16], &b[16 + 32 * n..48 + 32 * n]);
        let (d, dmin) = (half(b, 80), half(b, 82));
        for l in 0..32 {
            q[l] = (qs[l] >> (2 * j)) & 3;
        }
        let sc = |i: usize| {
            (
                d * (scales[i] & 0xF) as f32,
                -(dmin * (scales[i] >> 4) as f32),
            )
        };
        let ((d0, m0), (d1, m1)) = (sc(2 * s), sc(2 * s + 1));
        return ([d0, d1], [0.0; 2], [m0, m1]);
    }
    // Q3_K: a high bit per value in `hmask` (bit 4n + j), set meaning "no -4".
    let (hmask, qs) = (&b[0..32], &b[32 + 32 * n..64 + 32 * n]);
    let d = half(b, 108);
    for l in 0..32 {
        let high = (hmask[l] >> (4 * n + j)) & 1;
        q[l] = ((qs[l] >> (2 * j)) & 3) | (high << 2);
    }
    let scales = q3k_scales(&b[96..108]);
    let sc = |i: usize| d * (scales[i] as i32 - 32) as f32;
    ([sc(2 * s), sc(2 * s + 1)], [4.0; 2], [0.0; 2])
}

/// Q3_K's sixteen 6-bit scales, unpacked from 12 bytes as llama.cpp does.
fn q3k_scales(b: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for i in 0..16 {
        let low = if i < 8 { b[i] & 0xF } else { b[i - 8] >> 4 };
        let high = (b[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = low | (high << 4);
    }
    out
}

/// Rounds to the nearest integer, halves away from zero (C's `roundf`, as llama.cpp).
fn round(x: f32) -> i32 {
    x.round() as i32
}

/// The value of largest magnitude, with its sign.
fn signed_absmax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |a, &v| if v.abs() > a.abs() { v } else { a })
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Codes `(x - min) / d` for an asymmetric block of `levels` levels; returns `(d, min)`.
fn affine(x: &[f32], levels: f32, q: &mut [u8]) -> (f32, f32) {
    let (lo, hi) = min_max(x);
    let d = (hi - lo) / levels;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round((v - lo) * id).clamp(0, levels as i32) as u8;
    }
    (d, lo)
}

/// Codes `x / d + offset` for a symmetric block whose extreme value maps to `-offset`
/// (llama.cpp's Q4_0/Q5_0 choice); returns `d`.
fn symmetric(x: &[f32], offset: f32, q: &mut [u8]) -> f32 {
    let d = signed_absmax(x) / -offset;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let top = 2 * offset as i32 - 1;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v * id + offset + 0.5) as i32).clamp(0, top) as u8;
    }
    d
}

/// Writes one block of `format` for the `format.block_len()` values `x` into `out`
/// (`format.block_bytes()` bytes).
pub(crate) fn encode(format: QFormat, x: &[f32], out: &mut [u8]) {
    let mut q = [0u8; 256];
    match format {
        QFormat::Q8_0 => {
            let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            put_half(out, 0, d);
            for (o, &v) in out[2..34].iter_mut().zip(x) {
                *o = round(v * id).clamp(-127, 127) as i8 as u8;
            }
        }
        QFormat::Q4_0 | QFormat::Q4_1 => {
            let at = if format == QFormat::Q4_0 {
                put_half(out, 0, symmetric(x, 8.0, &mut q));
                2
            } else {
                let (d, lo) = affine(x, 15.0, &mut q);
                put_half(out, 0, d);
                put_half(out, 2, lo);
                4
            };
            for j in 0..16 {
                out[at + j] = q[j] | (q[j + 16] << 4);
            }
        }
        QFormat::Q5_0 | QFormat::Q5_1 => {
            let at = if format == QFormat::Q5_0 {
                put_half(out, 0, symmetric(x, 16.0, &mut q));
                2
            } else {
                let (d, lo) = affine(x, 31.0, &mut q);
                put_half(out, 0, d);
                put_half(out, 2, lo);
                4
            };
            let qh = (0..32).fold(0u32, |h, j| h | (((q[j] >> 4) as u32 & 1) << j));
            out[at..at + 4].copy_from_slice(&qh.to_le_bytes());
            for j in 0..16 {
                out[at + 4 + j] = (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4);
            }
        }
        QFormat::Q4K | QFormat::Q5K => encode_k(format, x, out),
        QFormat::Q6K => encode_q6k(x, out),
        // Read only: `QTensor::quantize` refuses them first.
        QFormat::Q2K | QFormat::Q3K => out.fill(0),
    }
}

/// Q4_K / Q5_K: an affine code per 32 values whose scale and min are 6-bit multiples of two
/// f16 super-block factors.
fn encode_k(format: QFormat, x: &[f32], out: &mut [u8]) {
    let levels = if format == QFormat::Q4K { 15.0 } else { 31.0 };
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for s in 0..8 {
        let (lo, hi) = min_max(&x[32 * s..32 * s + 32]);
        let lo = lo.min(0.0); // the min is subtracted as a non-negative multiple
        scales[s] = (hi - lo) / levels;
        mins[s] = -lo;
    }
    let max_scale = scales.iter().fold(0.0f32, |a, &v| a.max(v));
    let max_min = mins.iter().fold(0.0f32, |a, &v| a.max(v));
    let d = f16::from_f32(max_scale / 63.0).to_f32();
    let dmin = f16::from_f32(max_min / 63.0).to_f32();
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for s in 0..8 {
        sc[s] = if d > 0.0 {
            round(scales[s] / d).clamp(0, 63) as u8
        } else {
            0
        };
        mn[s] = if dmin > 0.0 {
            round(mins[s] / dmin).clamp(0, 63) as u8
        } else {
            0
        };
    }
    put_half(out, 0, d);
    put_half(out, 2, dmin);
    pack_scale_min_k4(&sc, &mn, &mut out[4..16]);
    let mut q = [0u8; 256];
    for s in 0..8 {
        let step = d * sc[s] as f32;
        let id = if step != 0.0 { 1.0 / step } else { 0.0 };
        let m = dmin * mn[s] as f32;
        for l in 0..32 {
            q[32 * s + l] = round((x[32 * s + l] + m) * id).clamp(0, levels as i32) as u8;
        }
    }
    let qs_at = if format == QFormat::Q4K { 16 } else { 48 };
    if format == QFormat::Q5K {
        out[16..48].fill(0);
    }
    for c in 0..4 {
        for l in 0..32 {
            let (a, b) = (q[64 * c + l], q[64 * c + 32 + l]);
            out[qs_at + 32 * c + l] = (a & 0xF) | ((b & 0xF) << 4);
            if format == QFormat::Q5K {
                out[16 + l] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
            }
        }
    }
}

/// Q6_K: a signed 6-bit code per value, an i8 scale per 16 values, one f16 factor.
fn encode_q6k(x: &[f32], out: &mut [u8]) {
    let mut scales = [0f32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        *s = signed_absmax(&x[16 * i..16 * i + 16]) / -32.0;
    }
    let max = signed_absmax(&scales);
    let d = f16::from_f32(max / -128.0).to_f32();
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sc = [0i8; 16];
    for (c, &s) in sc.iter_mut().zip(&scales) {
        *c = round(s * id).clamp(-128, 127) as i8;
    }
    let mut q = [0u8; 256];
    for i in 0..256 {
        let step = d * sc[i / 16] as f32;
        let v = if step != 0.0 { round(x[i] / step) } else { 0 };
        q[i] = (v.clamp(-32, 31) + 32) as u8;
    }
    out.fill(0);
    for hf in 0..2 {
        let q = &q[128 * hf..128 * hf + 128];
        for l in 0..32 {
            let (a, b, c, e) = (q[l], q[l + 32], q[l + 64], q[l + 96]);
            out[64 * hf + l] = (a & 0xF) | ((c & 0xF) << 4);
            out[64 * hf + l + 32] = (b & 0xF) | ((e & 0xF) << 4);
            out[128 + 32 * hf + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    for (o, &c) in out[192..208].iter_mut().zip(&sc) {
        *o = c as u8;
    }
    put_half(out, 208, d);
}
