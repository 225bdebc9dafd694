//! Vectorization shared by the kernels: the run-time choice of AVX-512, AVX2+FMA or the
//! baseline ([`simd_kernel!`], by `isa::simd_level`), branch-free `exp`/`erf`/`tanh` that
//! vectorize, lane-parallel sums, and maps of such kernels over a tensor's storage.

use super::par::{CHUNK, par_blocks1, par_blocks2, rows_per_task};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// Defines a kernel function compiled three times (AVX-512, AVX2 + FMA, baseline) with the
/// widest one this CPU runs chosen at each call. Everything the body calls must be
/// `#[inline(always)]` so that it is compiled for the chosen extension too.
macro_rules! simd_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::kernels::cpu::isa::simd_level() {
                    // SAFETY: `isa::simd_level` detected these features on this CPU.
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by every kernel test.
                    2 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above, AVX2 and FMA.
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by every kernel test.
                    1 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_kernel;

/// `exp(x)` to about 2 ulp (Cephes' polynomial after a `2^n` range reduction), branch-free so
/// that loops over it vectorize. 0 below -87.33 (and for -inf); clamped at `exp(88)` above.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let tiny = x < -87.33;
    let x = if tiny { -87.33 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    // n = round(x / ln 2), read from the low mantissa bits after adding 1.5 · 2^23.
    const MAGIC: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4; // x - n ln 2 in two parts
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let bits = (shifted.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    let y = e * f32::from_bits(bits as u32);
    if tiny { 0.0 } else { y }
}

/// `erf(x)` with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26, as PyTorch's
/// vectorized CPU erf).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_72) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 { -y } else { y }
}

/// `tanh(x)` through `exp(-2|x|)`, absolute error below 1e-7.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    tanh_sech2(x).0
}

/// `(tanh(x), 1 - tanh²(x))`, the second without cancellation: `4e / (1 + e)²`, `e = exp(-2|x|)`.
#[inline(always)]
pub(crate) fn tanh_sech2(x: f32) -> (f32, f32) {
    let e = exp(-2.0 * x.abs());
    let r = 1.0 / (1.0 + e);
    let y = (1.0 - e) * r;
    (if x < 0.0 { -y } else { y }, 4.0 * e * r * r)
}

/// Sum with 16 independent lanes (vectorizes; rounding as a pairwise sum, not a serial one).
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    dot_by(xs, xs, |a, _| a)
}

/// `Σ f(a_i, b_i)` with 16 lanes.
#[inline(always)]
pub(crate) fn dot_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let mut tail = 0f32;
    for (&x, &y) in ar.iter().zip(br) {
        tail += f(x, y);
    }
    let mut width = 8;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// `kernel(y, x)` over parallel chunks of `x`: a new tensor of `x`'s shape.
pub(crate) fn map1(x: &Prim, kernel: fn(&mut [f32], &[f32])) -> Option<Prim> {
    let xs = values(x)?;
    let mut out = vec![0f32; xs.len()];
    par_blocks1(&mut out, xs, CHUNK, kernel);
    Some(from_vec(out, x.dims()))
}

/// `kernel(y, x, g)` over parallel chunks of `x` and `g` (same shape).
pub(crate) fn map2(x: &Prim, g: &Prim, kernel: fn(&mut [f32], &[f32], &[f32])) -> Option<Prim> {
    let (xs, gs) = (values(x)?, values(g)?);
    if x.dims() != g.dims() {
        return None;
    }
    let mut out = vec![0f32; xs.len()];
    par_blocks2(&mut out, xs, gs, CHUNK, kernel);
    Some(from_vec(out, x.dims()))
}

/// `kernel(y_rows, x_rows)` over parallel blocks of whole rows of the last dim of `x`.
pub(crate) fn map_rows1(x: &Prim, kernel: impl Fn(&mut [f32], &[f32]) + Sync) -> Option<Prim> {
    let xs = values(x)?;
    let d = row_len(x)?;
    let mut out = vec![0f32; xs.len()];
    par_blocks1(&mut out, xs, rows_per_task(d) * d, kernel);
    Some(from_vec(out, x.dims()))
}

/// `kernel(y_rows, x_rows, g_rows)` over parallel blocks of whole rows of `x` and `g` (same
/// shape).
pub(crate) fn map_rows2(
    x: &Prim,
    g: &Prim,
    kernel: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Option<Prim> {
    let (xs, gs) = (values(x)?, values(g)?);
    let d = row_len(x)?;
    if x.dims() != g.dims() {
        return None;
    }
    let mut out = vec![0f32; xs.len()];
    par_blocks2(&mut out, xs, gs, rows_per_task(d) * d, kernel);
    Some(from_vec(out, x.dims()))
}

/// The last dim of `x`, when `x` has non-empty rows.
pub(crate) fn row_len(x: &Prim) -> Option<usize> {
    let d = *x.dims().last()?;
    (d > 0).then_some(d)
}

/// Optional `(D,)` parameter values.
pub(crate) fn param(p: Option<&Prim>, d: usize) -> Option<Option<&[f32]>> {
    match p {
        None => Some(None),
        Some(p) => {
            let v = values(p)?;
            (v.len() == d).then_some(Some(v))
        }
    }
}
