//! Quantized products on AMX int8 tiles (`amx::int8_sums`, `tdpbsud`): the integer sums of
//! the VNNI kernel (`int8`), 16 activation rows by 16 weight rows per tile, then the same f32
//! epilogue in the same order, so the results are bit-identical to the VNNI and portable
//! kernels. For products of more than `FEW_ROWS` rows (prefill, batched decoding); one token
//! at a time streams the weight on the VNNI kernel.

use super::super::amx::{Backend, int8_sums};
use super::super::par::Out;
use super::super::simd::simd_kernel;
use super::super::spin;
use super::pack_int8::{ActBlock, Codes, Packed, ROWS};

/// Activation rows per tile.
const TILE_M: usize = 16;

/// `out (m, p.rows) = x wᵀ + bias` from the activations' 8-bit blocks `acts` (`m` rows of
/// `p.blocks()` each), on `backend`'s tiles.
pub(crate) fn qlinear(
    backend: Backend,
    p: &Packed,
    acts: &[ActBlock],
    m: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (n, blocks, halves) = (p.rows, p.blocks(), p.codes.halves());
    let lda = 32 * blocks;
    // The activations' codes row by row, zero rows up to a whole tile.
    let mut codes = vec![0i8; m.next_multiple_of(TILE_M) * lda];
    for (row, a) in codes.chunks_exact_mut(32).zip(acts) {
        row.copy_from_slice(&a.q);
    }
    let groups = p.groups();
    let tasks = (rayon::current_num_threads() * 4).min(groups).max(1);
    let out_ptr = Out::new(out.as_mut_ptr());
    spin::run(tasks, &|t| {
        let (g0, g1) = (groups * t / tasks, groups * (t + 1) / tasks);
        let mut sums = vec![0i32; blocks * halves * 256];
        let mut unpacked = Vec::new();
        for g in g0..g1 {
            let (w, step) = weight_codes(p, g, &mut unpacked);
            for i in (0..m).step_by(TILE_M) {
                let rows = TILE_M.min(m - i);
                int8_sums(
                    backend,
                    halves,
                    blocks,
                    &codes[i * lda..],
                    lda,
                    w,
                    step,
                    &mut sums,
                );
                let mut acc = [[0f32; ROWS]; TILE_M];
                epilogue(
                    p,
                    g,
                    &acts[i * blocks..(i + rows) * blocks],
                    rows,
                    &sums,
                    &mut acc,
                );
                for (mi, acc) in acc.iter().take(rows).enumerate() {
                    for (r, &v) in acc.iter().enumerate().take(ROWS.min(n - g * ROWS)) {
                        let col = g * ROWS + r;
                        let v = v + bias.map_or(0.0, |b| b[col]);
                        // SAFETY: row i + mi < m, column col < n: inside `out`, and only
                        // this task writes the columns of group g.
                        // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/quant.rs.
                        unsafe { *out_ptr.at((i + mi) * n + col) = v };
                    }
                }
            }
        }
    });
}

/// Row group `g`'s codes as 8-bit bytes and the distance between blocks: read in place for
/// 8-bit records, or unpacked from nibbles into `buf` (512 bytes per block).
fn weight_codes<'a>(p: &'a Packed, g: usize, buf: &'a mut Vec<u8>) -> (&'a [u8], usize) {
    let (rec, skip) = (p.record_bytes(), p.scale_bytes());
    let data = p.group(g);
    if p.codes != Codes::Nibble {
        return (&data[skip..], rec);
    }
    buf.resize(p.blocks() * 512, 0);
    for (record, out) in data.chunks_exact(rec).zip(buf.chunks_exact_mut(512)) {
        let q = &record[skip..skip + 256];
        let (low, high) = out.split_at_mut(256);
        for ((l, h), &x) in low.iter_mut().zip(high.iter_mut()).zip(q) {
            (*l, *h) = (x & 0xF, x >> 4);
        }
    }
    (buf, 512)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

simd_kernel! {
    /// Adds group `g`'s blocks to `acc[i][r]` (activation row `i`, weight row `r`) from the
    /// integer `sums` of `int8_sums`, in the VNNI kernel's order: per block, each half's
    /// `fma(sum, d · scale, acc)`, then each half's offset `fma(m, Σa, acc)` (or
    /// `fma(d, -z · Σa, acc)` for a symmetric format).
    fn epilogue(
        p: &Packed,
        g: usize,
        acts: &[ActBlock],
        rows: usize,
        sums: &[i32],
        acc: &mut [[f32; ROWS]; TILE_M],
    ) {
        let (blocks, halves) = (p.blocks(), p.codes.halves());
        let (rec, sets) = (p.record_bytes(), p.scale_bytes() / 32);
        for (b, record) in p.group(g).chunks_exact(rec).enumerate() {
            // scale[set][r]: each half's d, then (offset formats) each half's m.
            let mut scale = [[0f32; ROWS]; 4];
            for (set, s) in scale.iter_mut().enumerate().take(sets) {
                for (r, x) in s.iter_mut().enumerate() {
                    *x = f16_at(record, 32 * set + 2 * r);
                }
            }
            for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
                let a = &acts[mi * blocks + b];
                for h in 0..halves {
                    let s = &sums[((b * halves + h) * TILE_M + mi) * ROWS..][..ROWS];
                    for ((x, &s), &d) in acc.iter_mut().zip(s).zip(&scale[h]) {
                        *x = (s as f32).mul_add(d * a.scale, *x);
                    }
                }
                for h in 0..halves {
                    let sum = if halves == 2 { a.sums[h] } else { a.sums[2] };
                    let (by, times) = match p.zero {
                        None => (&scale[halves + h], sum),
                        Some(z) => (&scale[h], -z * sum),
                    };
                    for (x, &c) in acc.iter_mut().zip(by) {
                        *x = c.mul_add(times, *x);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::int8;
    use super::*;
    use crate::base::quant::{QFormat, QTensor};
    use crate::kernels::cpu::amx::int8_backend;
    use crate::kernels::cpu::isa::{Int8Dot, int8_dot};
    use crate::{DType, Device, Tensor};

    /// Every record layout (nibbles, bytes, 16-column halves; offsets stored or a centre
    /// code), rows past a tile and a weight group, with and without bias: the tiles' results
    /// equal the portable kernel's bit for bit (and so the VNNI kernel's), on the emulator and
    /// where the CPU has them, the real tiles.
    #[test]
    fn tile_products_are_bit_identical_to_the_integer_kernels() -> crate::Result<()> {
        let mut backends = vec![Backend::Emulated];
        match int8_backend() {
            Some(Backend::Tiles) => backends.push(Backend::Tiles),
            _ => eprintln!("SKIPPED (real tiles): this CPU has no usable AMX-INT8; emulator only"),
        }
        let (m, n, k) = (37, 45, 512);
        let x = Tensor::from_vec(
            (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0).powi(3))
                .collect::<Vec<f32>>(),
            &[m, k],
            Device::Cpu,
        )?;
        let w = Tensor::from_vec(
            (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 / 48.0 - 1.0) * 0.3)
                .collect::<Vec<f32>>(),
            &[n, k],
            Device::Cpu,
        )?;
        let bias: Vec<f32> = (0..n).map(|i| i as f32 / 7.0).collect();
        let xs = x.to_dtype(DType::F32)?.to_vec::<f32>()?;
        for format in [
            QFormat::Q4_0,
            QFormat::Q4_1,
            QFormat::Q8_0,
            QFormat::Q5_1,
            QFormat::Q6K,
            QFormat::Q4K,
        ] {
            let packed = Packed::new(&QTensor::quantize(&w, format)?);
            for bias in [None, Some(bias.as_slice())] {
                let mut want = vec![0f32; m * n];
                int8::qlinear(&packed, &xs, m, bias, &mut want, Int8Dot::Portable);
                if int8_dot() == Int8Dot::Vnni {
                    let mut vnni = vec![0f32; m * n];
                    int8::qlinear(&packed, &xs, m, bias, &mut vnni, Int8Dot::Vnni);
                    let same = vnni
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{format:?}: VNNI and portable kernels differ");
                }
                for &backend in &backends {
                    let mut got = vec![0f32; m * n];
                    int8::qlinear(&packed, &xs, m, bias, &mut got, Int8Dot::Amx(backend));
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{format:?} bias {} on {backend:?}", bias.is_some());
                }
            }
        }
        Ok(())
    }
}
