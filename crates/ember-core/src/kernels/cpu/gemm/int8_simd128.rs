//! The quantized product's row-group kernel on WebAssembly SIMD128: the portable kernel's
//! arithmetic (`int8::portable_group`), 16 weight rows at a time.
//!
//! Integer sums: the codes widened to i16 once per record and multiplied with the
//! activations' 8-bit values by `i32x4.dot_i16x8_s` (pairs of products summed, exact), the
//! pairs of each row added at the end. The f32 epilogue is the portable kernel's
//! `fma(x, y, acc)` taken in f64 (the product of two f32 is exact there) and rounded once to
//! f32: WebAssembly has no fused multiply-add, and `f32::mul_add` is a slow software call.
//! The result equals the portable (and VNNI) kernel's except where rounding `x·y + acc` to f64
//! first lands on a tie of f32, which the kernel tests' tolerance covers.

use core::arch::wasm32::*;

use super::pack_int8::{ActBlock, Codes, Packed, ROWS, TILE_M};

/// `fma(x, y, acc)` for four lanes, through f64.
#[inline(always)]
fn fma4(x: v128, y: v128, acc: v128) -> v128 {
    let lo = f64x2_add(
        f64x2_mul(f64x2_promote_low_f32x4(x), f64x2_promote_low_f32x4(y)),
        f64x2_promote_low_f32x4(acc),
    );
    let hi = f64x2_add(
        f64x2_mul(
            f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(x, x)),
            f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(y, y)),
        ),
        f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(acc, acc)),
    );
    let (lo, hi) = (f32x4_demote_f64x2_zero(lo), f32x4_demote_f64x2_zero(hi));
    i32x4_shuffle::<0, 1, 4, 5>(lo, hi)
}

/// 16 bytes of `q` from `at`.
#[inline(always)]
fn load16(q: &[u8], at: usize) -> v128 {
    let bytes = &q[at..at + 16];
    // SAFETY: `bytes` holds 16 bytes (the slice above checked the range); unaligned loads
    // are allowed. Exercised by tests/quant.rs under Node (scripts/test_wasm.sh).
    unsafe { v128_load(bytes.as_ptr().cast()) }
}

/// f16 scales of the 16 rows starting at byte `at` of `scales`, as four f32x4.
fn scales16(scales: &[u8], at: usize) -> [v128; 4] {
    let f =
        |r: usize| half::f16::from_le_bytes([scales[at + 2 * r], scales[at + 2 * r + 1]]).to_f32();
    std::array::from_fn(|t| f32x4(f(4 * t), f(4 * t + 1), f(4 * t + 2), f(4 * t + 3)))
}

/// Accumulates row group `g` against `rows` activation rows into `out`, as
/// `int8::portable_group` does.
pub(super) fn group(
    p: &Packed,
    g: usize,
    acts: &[ActBlock],
    rows: usize,
    out: &mut [[f32; ROWS]; TILE_M],
) {
    let (codes, blocks) = (p.codes, p.blocks());
    let (rec, halves) = (p.record_bytes(), codes.halves());
    let mut acc = [[f32x4_splat(0.0); 4]; TILE_M];
    let low = u8x16_splat(0x0F);
    for (b, record) in p.group(g).chunks_exact(rec).enumerate() {
        let (scales, q) = record.split_at(p.scale_bytes());
        // w[i][t][0|1]: the codes of column quad i (columns 4i..4i+4) for rows 4t, 4t+1 (0)
        // and 4t+2, 4t+3 (1), widened to i16.
        let w: [[[v128; 2]; 4]; 8] = std::array::from_fn(|i| {
            std::array::from_fn(|t| {
                let bytes = match codes {
                    Codes::Nibble if i < 4 => v128_and(load16(q, 64 * i + 16 * t), low),
                    Codes::Nibble => u8x16_shr(load16(q, 64 * (i - 4) + 16 * t), 4),
                    _ => load16(q, 64 * i + 16 * t),
                };
                [
                    u16x8_extend_low_u8x16(bytes),
                    u16x8_extend_high_u8x16(bytes),
                ]
            })
        });
        let d: [[v128; 4]; 2] = std::array::from_fn(|h| match h < halves {
            true => scales16(scales, 32 * h),
            false => [f32x4_splat(0.0); 4],
        });
        let offsets: [[v128; 4]; 2] = std::array::from_fn(|h| match p.zero {
            None if h < halves => scales16(scales, 32 * (halves + h)),
            _ => [f32x4_splat(0.0); 4],
        });
        for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
            let a = &acts[mi * blocks + b];
            // sums[h][t][0|1]: pairs of products, as `w`.
            let mut sums = [[[i32x4_splat(0); 2]; 4]; 2];
            for (i, w) in w.iter().enumerate() {
                let quad = i32::from_le_bytes(std::array::from_fn(|j| a.q[4 * i + j] as u8));
                let av = i16x8_extend_low_i8x16(i32x4_splat(quad));
                let h = if halves == 2 { i / 4 } else { 0 };
                for (s, w) in sums[h].iter_mut().zip(w) {
                    s[0] = i32x4_add(s[0], i32x4_dot_i16x8(w[0], av));
                    s[1] = i32x4_add(s[1], i32x4_dot_i16x8(w[1], av));
                }
            }
            let scale = f32x4_splat(a.scale);
            for h in 0..halves {
                for (t, acc) in acc.iter_mut().enumerate() {
                    let [lo, hi] = sums[h][t];
                    let rows4 = i32x4_add(
                        i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
                        i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
                    );
                    let ds = f32x4_mul(d[h][t], scale);
                    *acc = fma4(f32x4_convert_i32x4(rows4), ds, *acc);
                }
            }
            for h in 0..halves {
                let sum = if halves == 2 { a.sums[h] } else { a.sums[2] };
                for (t, acc) in acc.iter_mut().enumerate() {
                    *acc = match p.zero {
                        None => fma4(offsets[h][t], f32x4_splat(sum), *acc),
                        Some(z) => fma4(d[h][t], f32x4_splat(-z * sum), *acc),
                    };
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc).take(rows) {
        for (t, v) in a.iter().enumerate() {
            for (l, x) in o[4 * t..4 * t + 4].iter_mut().enumerate() {
                *x = match l {
                    0 => f32x4_extract_lane::<0>(*v),
                    1 => f32x4_extract_lane::<1>(*v),
                    2 => f32x4_extract_lane::<2>(*v),
                    _ => f32x4_extract_lane::<3>(*v),
                };
            }
        }
    }
}
