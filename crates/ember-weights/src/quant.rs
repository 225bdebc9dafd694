//! Dequantization of GGML block formats, following llama.cpp's published layouts
//! (`ggml-quants.c`). Checked against the `gguf` Python package in the tests.

use half::{bf16, f16};

use crate::gguf::GgufType;

fn h(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Decodes `n` elements of `ty` from `bytes` into f32. `bytes` must hold exactly
/// `ty.bytes_for(n)` bytes (checked by the GGUF reader); returns `None` otherwise.
pub fn dequantize(ty: GgufType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    if ty.bytes_for(n)? != bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    match ty {
        GgufType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        ),
        GgufType::F16 => out.extend(bytes.chunks_exact(2).map(|c| h(c, 0))),
        GgufType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgufType::Q8_0 => {
            for b in bytes.chunks_exact(34) {
                let d = h(b, 0);
                out.extend(b[2..34].iter().map(|&q| d * (q as i8) as f32));
            }
        }
        GgufType::Q4_0 => {
            for b in bytes.chunks_exact(18) {
                let d = h(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| d * ((q & 0xF) as f32 - 8.0)));
                out.extend(qs.iter().map(|&q| d * ((q >> 4) as f32 - 8.0)));
            }
        }
        GgufType::Q4_1 => {
            for b in bytes.chunks_exact(20) {
                let (d, m) = (h(b, 0), h(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| d * (q & 0xF) as f32 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
            }
        }
        GgufType::Q4K => {
            for b in bytes.chunks_exact(144) {
                let (d, dmin) = (h(b, 0), h(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for (chunk, q) in qs.chunks_exact(32).enumerate() {
                    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    out.extend(q.iter().map(|&v| d1 * (v & 0xF) as f32 - m1));
                    out.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - m2));
                }
            }
        }
        GgufType::Q6K => {
            for b in bytes.chunks_exact(210) {
                let (ql_all, qh_all) = (&b[0..128], &b[128..192]);
                let sc: Vec<f32> = b[192..208].iter().map(|&s| s as i8 as f32).collect();
                let d = h(b, 208);
                for half_ in 0..2 {
                    let ql = &ql_all[64 * half_..];
                    let qh = &qh_all[32 * half_..];
                    let sc = &sc[8 * half_..];
                    let mut y = [0f32; 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * sc[is] * q1 as f32;
                        y[l + 32] = d * sc[is + 2] * q2 as f32;
                        y[l + 64] = d * sc[is + 4] * q3 as f32;
                        y[l + 96] = d * sc[is + 6] * q4 as f32;
                    }
                    out.extend_from_slice(&y);
                }
            }
        }
    }
    Some(out)
}

/// Q4_K's packed 6-bit (scale, min) pair `j` of a super-block.
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
