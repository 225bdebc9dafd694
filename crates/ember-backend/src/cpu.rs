//! Fused CPU kernels for f32: one pass over memory where the composed primitives would make
//! five to fifteen (GELU and its backward, layer norm and its backward, the softmax backward of
//! attention, the AdamW update).
//!
//! Each kernel reads burn-flex's storage directly and returns `None` when it does not apply (not
//! on the CPU, not f32, not contiguous, shapes that do not match); callers then fall back to the
//! composed primitives, which stay the definition on every other device and dtype. Loops are
//! written so that LLVM vectorizes them, and compiled three times (AVX-512, AVX2+FMA, baseline)
//! with the widest chosen at run time. Work is split over rayon's pool.

use burn_backend::{Shape, TensorData};
use burn_dispatch::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::DType;
use crate::prim::Prim;

/// Elements per parallel task of the elementwise kernels.
const CHUNK: usize = 1 << 14;

// ---------------------------------------------------------------- access to burn-flex storage

fn flex(p: &Prim) -> Option<&FlexTensor> {
    if p.dtype() != DType::F32 {
        return None;
    }
    #[allow(unreachable_patterns)]
    match &p.inner_ref().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => Some(t),
        _ => None,
    }
}

/// The values of a contiguous f32 CPU primitive, in row-major order.
fn values(p: &Prim) -> Option<&[f32]> {
    flex(p)?.as_slice::<f32>()
}

/// Takes the burn-flex tensor out of an f32 CPU primitive, or gives the primitive back.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
fn take_flex(p: Prim) -> Result<FlexTensor, Prim> {
    let dtype = p.dtype();
    if dtype != DType::F32 {
        return Err(p);
    }
    let inner = p.into_inner();
    #[allow(unreachable_patterns)]
    match inner.kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => Ok(t),
        kind => Err(Prim::from_parts(
            DispatchTensor {
                kind,
                autodiff: inner.autodiff,
            },
            dtype,
        )),
    }
}

fn wrap(t: FlexTensor) -> Prim {
    let inner = DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: Default::default(),
    };
    Prim::from_parts(inner, DType::F32)
}

/// A new CPU primitive of shape `dims` holding `values`.
fn from_vec(values: Vec<f32>, dims: Vec<usize>) -> Prim {
    wrap(FlexTensor::from_data(TensorData::new(
        values,
        Shape::from(dims),
    )))
}

/// The storage of `t` for writing in place: `None` unless it is contiguous from offset 0 and
/// no other handle shares it.
fn unique_values(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.layout().num_elements();
    if t.layout().contiguous_offsets() != Some((0, n)) {
        return None;
    }
    Some(&mut t.try_storage_mut::<f32>()?[..n])
}

/// `t` itself when its storage may be written in place, else a private contiguous copy.
fn owned(mut t: FlexTensor) -> Option<FlexTensor> {
    if unique_values(&mut t).is_some() {
        return Some(t);
    }
    let copy = t.to_contiguous().as_slice::<f32>()?.to_vec();
    let dims = t.layout().shape().clone();
    Some(FlexTensor::from_data(TensorData::new(copy, dims)))
}

/// True for a 2-D f32 CPU primitive that is the transpose of a row-major matrix (strides
/// `[1, rows]`), as `w.transpose(0, 1)` of a weight.
pub fn is_transposed(p: &Prim) -> bool {
    let dims = p.dims();
    flex(p).is_some_and(|t| {
        dims.len() == 2 && dims[1] > 1 && t.layout().strides() == [1, dims[0] as isize]
    })
}

/// True for an f32 primitive on the CPU, whatever its layout.
pub fn is_cpu_f32(p: &Prim) -> bool {
    flex(p).is_some()
}

/// True when every primitive is a contiguous f32 tensor on the CPU, so the kernels apply.
pub fn applies(prims: &[&Prim]) -> bool {
    prims.iter().all(|p| values(p).is_some())
}

// ---------------------------------------------------------------- views

/// Strides that give `new` the same elements as a tensor of shape `old` and strides
/// `strides`, without copying, when they exist (PyTorch's `view` rule: each run of old dims
/// that is contiguous in memory must map onto a run of new dims with the same element count).
fn view_strides(old: &[usize], strides: &[isize], new: &[usize]) -> Option<Vec<isize>> {
    if old.is_empty() || old.contains(&0) || new.contains(&0) {
        return None;
    }
    let mut out = vec![0isize; new.len()];
    let mut view_d = new.len() as isize - 1;
    let mut base = *strides.last()?;
    let (mut old_count, mut new_count) = (1usize, 1usize);
    for d in (0..old.len()).rev() {
        old_count *= old[d];
        let run_ends = d == 0 || (old[d - 1] != 1 && strides[d - 1] != old_count as isize * base);
        if run_ends {
            while view_d >= 0 && (new_count < old_count || new[view_d as usize] == 1) {
                out[view_d as usize] = new_count as isize * base;
                new_count *= new[view_d as usize];
                view_d -= 1;
            }
            if new_count != old_count {
                return None;
            }
            if d > 0 {
                base = strides[d - 1];
                old_count = 1;
                new_count = 1;
            }
        }
    }
    (view_d == -1).then_some(out)
}

/// `p` reshaped to `dims` as a view of the same storage, for a strided f32 CPU tensor whose
/// layout allows it (splitting the last dim of a column slice, as the heads of a fused QKV
/// projection); burn-flex copies every non-contiguous tensor it reshapes. `None` when a copy
/// is needed or the tensor is contiguous already (burn-flex's reshape is free then).
pub fn reshape_view(p: &Prim, dims: &[usize]) -> Option<Prim> {
    let t = flex(p)?;
    let layout = t.layout();
    if layout.is_contiguous() {
        return None;
    }
    let strides = view_strides(&p.dims(), layout.strides(), dims)?;
    let view = burn_flex::Layout::new(Shape::from(dims.to_vec()), strides, layout.start_offset());
    Some(wrap(FlexTensor::from_arc(t.data_arc(), view, t.dtype())))
}

/// `src` copied into `buf` in place at position `at` along `dim` (a KV cache growing by one
/// token): `buf` must be a contiguous f32 CPU tensor that nothing else holds, with `src`'s
/// dims except along `dim`, where `at + src_len` must fit. `buf` comes back in `Err` otherwise.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub fn write_along(buf: Prim, dim: usize, at: usize, src: &Prim) -> Result<Prim, Prim> {
    let (bd, sd) = (buf.dims(), src.dims());
    let fits = bd.len() == sd.len()
        && dim < bd.len()
        && (0..bd.len()).all(|d| d == dim || bd[d] == sd[d])
        && at.checked_add(sd[dim]).is_some_and(|end| end <= bd[dim]);
    let Some(src) = flex(src).filter(|_| fits && values(&buf).is_some()) else {
        return Err(buf);
    };
    let src = src.to_contiguous();
    let Some(sv) = src.as_slice::<f32>() else {
        return Err(buf);
    };
    let mut t = take_flex(buf)?;
    let Some(dst) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    let inner: usize = bd[dim + 1..].iter().product();
    let (cap, len) = (bd[dim] * inner, sd[dim] * inner); // per outer index
    for (o, block) in sv.chunks_exact(len.max(1)).enumerate() {
        dst[o * cap + at * inner..o * cap + at * inner + len].copy_from_slice(block);
    }
    Ok(wrap(t))
}

// ---------------------------------------------------------------- vectorization

/// The widest vector extension of this CPU that the kernels use: 2 = AVX-512, 1 = AVX2 + FMA,
/// 0 = the baseline.
#[cfg(target_arch = "x86_64")]
fn simd_level() -> u8 {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        let avx512 = has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw");
        match (avx2, avx512) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        }
    })
}

/// Defines a kernel function compiled three times (AVX-512, AVX2 + FMA, baseline) with the
/// widest one this CPU runs chosen at each call. Everything the body calls must be
/// `#[inline(always)]` so that it is compiled for the chosen extension too.
macro_rules! simd_kernel {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
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
                match simd_level() {
                    // SAFETY: `simd_level` detected these features on this CPU.
                    2 => return unsafe { avx512($($arg),*) },
                    1 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// `exp(x)` to about 2 ulp (Cephes' polynomial after a `2^n` range reduction), branch-free so
/// that loops over it vectorize. 0 below -87.33 (and for -inf); clamped at `exp(88)` above.
#[inline(always)]
fn exp(x: f32) -> f32 {
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
fn erf(x: f32) -> f32 {
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
fn tanh(x: f32) -> f32 {
    tanh_sech2(x).0
}

/// `(tanh(x), 1 - tanh²(x))`, the second without cancellation: `4e / (1 + e)²`, `e = exp(-2|x|)`.
#[inline(always)]
fn tanh_sech2(x: f32) -> (f32, f32) {
    let e = exp(-2.0 * x.abs());
    let r = 1.0 / (1.0 + e);
    let y = (1.0 - e) * r;
    (if x < 0.0 { -y } else { y }, 4.0 * e * r * r)
}

/// Sum with 16 independent lanes (vectorizes; rounding as a pairwise sum, not a serial one).
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    dot_by(xs, xs, |a, _| a)
}

/// `Σ f(a_i, b_i)` with 16 lanes.
#[inline(always)]
fn dot_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
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

// ---------------------------------------------------------------- elementwise kernels

/// A chunk kernel `y = f(x)`.
type Map1 = fn(&mut [f32], &[f32]);
/// A chunk kernel `y = f(x, g)`.
type Map2 = fn(&mut [f32], &[f32], &[f32]);

/// `kernel` over parallel chunks of `x`.
fn map1(x: &Prim, kernel: Map1) -> Option<Prim> {
    let xs = values(x)?;
    let mut out = vec![0f32; xs.len()];
    if xs.len() <= CHUNK {
        kernel(&mut out, xs); // one chunk: no hand-off to the pool
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| kernel(o, x));
    }
    Some(from_vec(out, x.dims()))
}

/// `kernel` over parallel chunks of `x` and `g` (same shape).
fn map2(x: &Prim, g: &Prim, kernel: Map2) -> Option<Prim> {
    let (xs, gs) = (values(x)?, values(g)?);
    if x.dims() != g.dims() {
        return None;
    }
    let mut out = vec![0f32; xs.len()];
    if xs.len() <= CHUNK {
        kernel(&mut out, xs, gs);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| kernel(o, x, g));
    }
    Some(from_vec(out, x.dims()))
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1/√(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;
/// `√(2/π)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const GELU_C: f32 = 0.044_715;

simd_kernel! {
    fn gelu_chunk(o: &mut [f32], x: &[f32]) {
        for (o, &x) in o.iter_mut().zip(x) {
            *o = 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2));
        }
    }
}

simd_kernel! {
    fn gelu_backward_chunk(o: &mut [f32], x: &[f32], g: &[f32]) {
        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            let pdf = exp(-0.5 * x * x) * INV_SQRT_2PI;
            *o = g * (cdf + x * pdf);
        }
    }
}

simd_kernel! {
    fn gelu_tanh_chunk(o: &mut [f32], x: &[f32]) {
        for (o, &x) in o.iter_mut().zip(x) {
            let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
            *o = 0.5 * x * (1.0 + tanh(u));
        }
    }
}

simd_kernel! {
    fn gelu_tanh_backward_chunk(o: &mut [f32], x: &[f32], g: &[f32]) {
        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
            let x2 = x * x;
            let (t, sech2) = tanh_sech2(SQRT_2_OVER_PI * (x + GELU_C * x2 * x));
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x2);
            *o = g * (0.5 * (1.0 + t) + 0.5 * x * sech2 * du);
        }
    }
}

/// Exact GELU, `x/2 · (1 + erf(x/√2))`.
pub fn gelu(x: &Prim) -> Option<Prim> {
    map1(x, gelu_chunk)
}

/// Gradient of exact GELU: `g · (Φ(x) + x φ(x))`.
pub fn gelu_backward(x: &Prim, g: &Prim) -> Option<Prim> {
    map2(x, g, gelu_backward_chunk)
}

/// GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub fn gelu_tanh(x: &Prim) -> Option<Prim> {
    map1(x, gelu_tanh_chunk)
}

/// Gradient of the tanh-approximated GELU.
pub fn gelu_tanh_backward(x: &Prim, g: &Prim) -> Option<Prim> {
    map2(x, g, gelu_tanh_backward_chunk)
}

simd_kernel! {
    fn add_assign_chunk(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
}

/// `acc + x` written into `acc`'s storage when nothing else holds it (gradient accumulation);
/// `acc` comes back in `Err` when the kernel does not apply (shared, another dtype or device,
/// a view, different shapes).
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub fn add_into(acc: Prim, x: &Prim) -> Result<Prim, Prim> {
    if acc.dims() != x.dims() || values(&acc).is_none() {
        return Err(acc);
    }
    let Some(xs) = values(x) else { return Err(acc) };
    let mut t = take_flex(acc)?;
    let Some(vals) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    if xs.len() <= CHUNK {
        add_assign_chunk(vals, xs);
    } else {
        vals.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(a, x)| add_assign_chunk(a, x));
    }
    Ok(wrap(t))
}

// ---------------------------------------------------------------- row kernels

/// Rows of length `d` per parallel task: about `CHUNK` elements, at least one row.
fn rows_per_task(d: usize) -> usize {
    (CHUNK / d.max(1)).max(1)
}

/// The last dim of `x`, when `x` has non-empty rows.
fn row_len(x: &Prim) -> Option<usize> {
    let d = *x.dims().last()?;
    (d > 0).then_some(d)
}

/// Optional `(D,)` parameter values.
fn param(p: Option<&Prim>, d: usize) -> Option<Option<&[f32]>> {
    match p {
        None => Some(None),
        Some(p) => {
            let v = values(p)?;
            (v.len() == d).then_some(Some(v))
        }
    }
}

/// Mean and `1/√(var + eps)` of one row (biased variance, two passes as PyTorch).
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let mean = sum(x) / x.len() as f32;
    let var = dot_by(x, x, |a, _| (a - mean) * (a - mean)) / x.len() as f32;
    (mean, 1.0 / (var + eps).sqrt())
}

simd_kernel! {
    /// Layer norm of the rows (length `d`) of `x` into `o`; weight and bias as ones and zeros
    /// when empty.
    fn layer_norm_rows(o: &mut [f32], x: &[f32], w: &[f32], b: &[f32], d: usize, eps: f32) {
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let (mean, rstd) = row_stats(x, eps);
            match (w.is_empty(), b.is_empty()) {
                (false, false) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                }
                (false, true) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd * w[i];
                    }
                }
                (true, false) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd + b[i];
                    }
                }
                (true, true) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd;
                    }
                }
            }
        }
    }
}

/// Layer norm over the last dim with optional `(D,)` weight and bias.
pub fn layer_norm(x: &Prim, w: Option<&Prim>, b: Option<&Prim>, eps: f64) -> Option<Prim> {
    let xs = values(x)?;
    let d = row_len(x)?;
    let w = param(w, d)?.unwrap_or(&[]);
    let b = param(b, d)?.unwrap_or(&[]);
    let mut out = vec![0f32; xs.len()];
    let step = rows_per_task(d) * d;
    if xs.len() <= step {
        layer_norm_rows(&mut out, xs, w, b, d, eps as f32);
    } else {
        out.par_chunks_mut(step)
            .zip(xs.par_chunks(step))
            .for_each(|(o, x)| layer_norm_rows(o, x, w, b, d, eps as f32));
    }
    Some(from_vec(out, x.dims()))
}

simd_kernel! {
    /// Layer-norm gradients of the rows of `x`: `dx` written, `g·x̂` and `g` added to `dw`, `db`.
    fn layer_norm_backward_rows(
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
        x: &[f32],
        g: &[f32],
        w: &[f32],
        d: usize,
        eps: f32,
    ) {
        for ((dx, x), g) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let (mean, rstd) = row_stats(x, eps);
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                dw[i] += g[i] * xhat;
                db[i] += g[i];
                // dx holds g·w for the second pass.
                dx[i] = if w.is_empty() { g[i] } else { g[i] * w[i] };
            }
            let m1 = sum(dx) / d as f32; // mean(g·w)
            let m2 = dot_by(dx, x, |gw, x| gw * (x - mean)) * rstd / d as f32; // mean(g·w·x̂)
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                dx[i] = rstd * (dx[i] - m1 - xhat * m2);
            }
        }
    }
}

/// Gradients of layer norm: `(dx, dweight, dbias)`, the last two when `w`/`has_bias` say the
/// op had them.
pub fn layer_norm_backward(
    x: &Prim,
    w: Option<&Prim>,
    has_bias: bool,
    g: &Prim,
    eps: f64,
) -> Option<(Prim, Option<Prim>, Option<Prim>)> {
    let (xs, gs) = (values(x)?, values(g)?);
    if x.dims() != g.dims() {
        return None;
    }
    let d = row_len(x)?;
    let w = param(w, d)?;
    let ws = w.unwrap_or(&[]);
    let mut dx = vec![0f32; xs.len()];
    let step = rows_per_task(d) * d;
    // Each task returns its partial (dweight, dbias) sums.
    let (dw, db) = dx
        .par_chunks_mut(step)
        .zip(xs.par_chunks(step).zip(gs.par_chunks(step)))
        .map(|(dx, (x, g))| {
            let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
            layer_norm_backward_rows(dx, &mut dw, &mut db, x, g, ws, d, eps as f32);
            (dw, db)
        })
        .reduce(
            || (vec![0f32; d], vec![0f32; d]),
            |(mut aw, mut ab), (bw, bb)| {
                aw.iter_mut().zip(&bw).for_each(|(a, b)| *a += b);
                ab.iter_mut().zip(&bb).for_each(|(a, b)| *a += b);
                (aw, ab)
            },
        );
    let dw = w.map(|_| from_vec(dw, vec![d]));
    let db = has_bias.then(|| from_vec(db, vec![d]));
    Some((from_vec(dx, x.dims()), dw, db))
}

simd_kernel! {
    fn softmax_backward_rows(o: &mut [f32], p: &[f32], g: &[f32], d: usize, scale: f32) {
        for ((o, p), g) in o.chunks_exact_mut(d).zip(p.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let dot = dot_by(p, g, |a, b| a * b);
            for i in 0..d {
                o[i] = scale * p[i] * (g[i] - dot);
            }
        }
    }
}

/// The softmax backward along the last dim, times `scale`: `scale · p · (gp - Σ gp·p)` per row.
pub fn softmax_backward(p: &Prim, gp: &Prim, scale: f64) -> Option<Prim> {
    let (ps, gs) = (values(p)?, values(gp)?);
    if p.dims() != gp.dims() {
        return None;
    }
    let d = row_len(p)?;
    let mut out = vec![0f32; ps.len()];
    let step = rows_per_task(d) * d;
    if ps.len() <= step {
        softmax_backward_rows(&mut out, ps, gs, d, scale as f32);
    } else {
        out.par_chunks_mut(step)
            .zip(ps.par_chunks(step).zip(gs.par_chunks(step)))
            .for_each(|(o, (p, g))| softmax_backward_rows(o, p, g, d, scale as f32));
    }
    Some(from_vec(out, p.dims()))
}

simd_kernel! {
    /// In place on rows of length `d`: `softmax(scale · x)`, with keys after the query masked
    /// out when `causal` (query `q = row % tq` sees keys `j <= q`, PyTorch's `is_causal`).
    fn softmax_rows(x: &mut [f32], d: usize, scale: f32, causal: bool, tq: usize, row0: usize) {
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let seen = if causal { ((row0 + r) % tq + 1).min(d) } else { d };
            let (live, masked) = row.split_at_mut(seen);
            let mut max = f32::NEG_INFINITY;
            for v in live.iter_mut() {
                *v *= scale;
                max = if *v > max { *v } else { max };
            }
            for v in live.iter_mut() {
                *v = exp(*v - max);
            }
            let inv = 1.0 / sum(live);
            for v in live.iter_mut() {
                *v *= inv;
            }
            masked.fill(0.0);
        }
    }
}

/// Softmax over the last dim of `scale · x`, optionally causal with queries on the
/// second-to-last dim; in place when nothing else holds `x` (as the fresh scores of a GEMM).
/// Callers check [`applies`] first: `None` after `x` was moved in would lose it.
pub fn scaled_softmax(x: Prim, scale: f64, causal: bool) -> Option<Prim> {
    let dims = x.dims();
    let d = row_len(&x)?;
    let tq = if dims.len() >= 2 {
        dims[dims.len() - 2]
    } else {
        1
    };
    let mut t = owned(take_flex(x).ok()?)?;
    let vals = unique_values(&mut t)?;
    let rows = rows_per_task(d);
    if vals.len() <= rows * d {
        softmax_rows(vals, d, scale as f32, causal, tq, 0);
    } else {
        vals.par_chunks_mut(rows * d)
            .enumerate()
            .for_each(|(i, chunk)| softmax_rows(chunk, d, scale as f32, causal, tq, i * rows));
    }
    Some(wrap(t))
}

// ---------------------------------------------------------------- cross-entropy, embeddings

simd_kernel! {
    /// `(log Σ_j exp(x_j), mean_j x_j)` of one row.
    fn row_lse_and_mean(x: &[f32]) -> (f32, f32) {
        let mut max = f32::NEG_INFINITY;
        for &v in x {
            max = if v > max { v } else { max };
        }
        let total = dot_by(x, x, |v, _| exp(v - max));
        (max + total.ln(), sum(x) / x.len() as f32)
    }
}

/// Per-row cross-entropy of logits `(N, C)` against class indices (checked in range by the
/// caller), with label smoothing `eps`: `lse - (1-eps)·x_t - eps·mean(x)`; rows whose target is
/// `ignore` give 0.
pub fn cross_entropy_rows(
    logits: &Prim,
    targets: &[i64],
    ignore: i64,
    eps: f64,
) -> Option<Vec<f32>> {
    let xs = values(logits)?;
    let c = row_len(logits)?;
    if xs.len() != targets.len() * c {
        return None;
    }
    let eps = eps as f32;
    Some(
        xs.par_chunks(c)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                if t == ignore || t < 0 || t as usize >= c {
                    return 0.0;
                }
                let (lse, mean) = row_lse_and_mean(row);
                lse - (1.0 - eps) * row[t as usize] - eps * mean
            })
            .collect(),
    )
}

simd_kernel! {
    /// One row of the cross-entropy gradient: `s · (softmax(x) - (1-eps)·onehot(t) - eps/C)`.
    fn cross_entropy_grad_row(o: &mut [f32], x: &[f32], t: usize, s: f32, eps: f32) {
        let (lse, _) = row_lse_and_mean(x);
        let floor = eps / x.len() as f32;
        for (o, &v) in o.iter_mut().zip(x) {
            *o = s * (exp(v - lse) - floor);
        }
        o[t] -= s * (1.0 - eps);
    }
}

/// Gradient of the cross-entropy with respect to logits `(N, C)`, each row scaled by
/// `row_scale[i]` (the output gradient and the reduction; 0 for ignored rows).
pub fn cross_entropy_backward(
    logits: &Prim,
    targets: &[i64],
    row_scale: &[f32],
    eps: f64,
) -> Option<Prim> {
    let xs = values(logits)?;
    let c = row_len(logits)?;
    let n = targets.len();
    if xs.len() != n * c || row_scale.len() != n {
        return None;
    }
    let mut out = vec![0f32; xs.len()];
    out.par_chunks_mut(c)
        .zip(xs.par_chunks(c))
        .zip(targets.par_iter().zip(row_scale.par_iter()))
        .for_each(|((o, x), (&t, &s))| {
            if s != 0.0 && t >= 0 && (t as usize) < c {
                cross_entropy_grad_row(o, x, t as usize, s, eps as f32);
            }
        });
    Some(from_vec(out, logits.dims()))
}

/// The gradient of `index_select(x, 0, idx)` for a 2-D `x` with `rows` rows: `g (len(idx), D)`
/// added into zeros at the selected rows (an embedding's backward). Indices out of range
/// decline.
pub fn index_rows_backward(rows: usize, idx: &[i64], g: &Prim) -> Option<Prim> {
    let gs = values(g)?;
    let d = row_len(g)?;
    if gs.len() != idx.len() * d || idx.iter().any(|&i| i < 0 || i as usize >= rows) {
        return None;
    }
    let mut out = vec![0f32; rows * d];
    for (&i, row) in idx.iter().zip(gs.chunks_exact(d)) {
        let dst = &mut out[i as usize * d..(i as usize + 1) * d];
        dst.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
    Some(from_vec(out, vec![rows, d]))
}

// ---------------------------------------------------------------- skinny matmul

/// Row counts up to which products skip the GEMM in [`matmul`] (decode steps, small batches).
pub const FEW_ROWS: usize = 4;

/// How `b` of a product `a @ b`, `(k, n)`, lies in its storage.
enum Rhs<'a> {
    /// Row-major: row `p` is `s[p·n .. p·n + n]`.
    Rows(&'a [f32]),
    /// The transpose of a row-major `(n, k)`: column `j` is `s[j·k .. j·k + k]`.
    Cols(&'a [f32]),
}

/// The storage view of a 2-D f32 CPU primitive `b` of shape `(k, n)`, when it is row-major or
/// a transposed row-major matrix.
fn rhs_view(b: &Prim) -> Option<Rhs<'_>> {
    let t = flex(b)?;
    let dims = b.dims();
    let [k, n] = dims[..] else { return None };
    let layout = t.layout();
    let (off, strides) = (layout.start_offset(), layout.strides());
    let s = t
        .storage::<f32>()
        .get(off..off.checked_add(k.checked_mul(n)?)?)?;
    if strides == [n as isize, 1] || n == 1 && strides[1] == 1 && strides[0] == 1 {
        Some(Rhs::Rows(s))
    } else if strides == [1, k as isize] {
        Some(Rhs::Cols(s))
    } else {
        None
    }
}

simd_kernel! {
    /// `y[i, :] += Σ_{p < rows} a[i, p0 + p] · b[p·ld .. p·ld + n]`: rows `p0..p0+rows` of a
    /// `b (k, n)` whose rows lie `ld` apart; `y` is `(m, n)`.
    fn few_rows_by_rows(
        y: &mut [f32],
        a: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        ld: usize,
        p0: usize,
        rows: usize,
    ) {
        for (yi, ai) in y.chunks_exact_mut(n).zip(a.chunks_exact(k)) {
            for p in 0..rows {
                let ap = ai[p0 + p];
                for (o, &bv) in yi.iter_mut().zip(&b[p * ld..p * ld + n]) {
                    *o += ap * bv;
                }
            }
        }
    }
}

simd_kernel! {
    /// `y[i, j] = a[i, :] · bt[(j0 + j)·ld ..][..k]` for `b = btᵀ` whose columns lie `ld` apart;
    /// `y` is `(m, w)` for the column block starting at `j0`.
    fn few_rows_by_cols(y: &mut [f32], a: &[f32], bt: &[f32], k: usize, ld: usize, j0: usize) {
        let w = y.len() / (a.len() / k);
        for (yi, ai) in y.chunks_exact_mut(w).zip(a.chunks_exact(k)) {
            for (j, o) in yi.iter_mut().enumerate() {
                let col = &bt[(j0 + j) * ld..(j0 + j) * ld + k];
                *o = dot_by(ai, col, |x, y| x * y);
            }
        }
    }
}

/// `a @ b` for a contiguous `a (m, k)` with `m <= FEW_ROWS` and `b (k, n)` row-major or
/// transposed: streams `b` once, split by columns over the threads. The GEMM packs `b` for so
/// few rows and runs matrix-vector products on one thread.
fn matmul_few_rows(a: &Prim, b: &Prim) -> Option<Prim> {
    let (ad, bd) = (a.dims(), b.dims());
    let ([m, k], [k2, n]) = (ad[..].try_into().ok()?, bd[..].try_into().ok()?);
    if m == 0 || m > FEW_ROWS || k != k2 || k == 0 || n == 0 {
        return None;
    }
    let av = values(a)?;
    let out = match rhs_view(b)? {
        // Contiguous row ranges of b per task (sequential streaming), partial sums added.
        Rhs::Rows(s) => {
            let tasks = rayon::current_num_threads() * 2;
            let rows = k.div_ceil(tasks).max(16);
            s.par_chunks(rows * n)
                .enumerate()
                .map(|(t, block)| {
                    let mut y = vec![0f32; m * n];
                    few_rows_by_rows(&mut y, av, block, k, n, n, t * rows, block.len() / n);
                    y
                })
                .reduce_with(|mut acc, part| {
                    acc.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                    acc
                })?
        }
        // Column blocks of the result per task: each reads its own rows of bᵀ.
        Rhs::Cols(s) => {
            let tasks = rayon::current_num_threads() * 4;
            let w = n.div_ceil(tasks).next_multiple_of(16).max(64).min(n);
            let blocks: Vec<usize> = (0..n).step_by(w).collect();
            let parts: Vec<Vec<f32>> = blocks
                .par_iter()
                .map(|&j0| {
                    let mut y = vec![0f32; m * w.min(n - j0)];
                    few_rows_by_cols(&mut y, av, s, k, k, j0);
                    y
                })
                .collect();
            let mut out = vec![0f32; m * n];
            for (&j0, part) in blocks.iter().zip(&parts) {
                let bw = part.len() / m;
                for i in 0..m {
                    out[i * n + j0..i * n + j0 + bw].copy_from_slice(&part[i * bw..(i + 1) * bw]);
                }
            }
            out
        }
    };
    Some(from_vec(out, vec![m, n]))
}

// ---------------------------------------------------------------- GEMM

/// Products of at least this many multiply-adds split one matrix over the threads (smaller
/// ones run one matrix per thread across the batch).
const GEMM_PARALLEL_MACS: usize = 192 * 192 * 192;

/// The element strides of `t` when all are non-negative and every element its layout reaches
/// lies inside its storage (so pointer arithmetic over them stays in bounds).
fn checked_strides(t: &FlexTensor) -> Option<Vec<isize>> {
    let layout = t.layout();
    let strides = layout.strides().to_vec();
    let dims = layout.shape();
    if strides.iter().any(|&s| s < 0) || dims.iter().any(|&d| d == 0) {
        return None;
    }
    let mut last = layout.start_offset();
    for (&d, &s) in dims.iter().zip(&strides) {
        last = last.checked_add((d - 1).checked_mul(s as usize)?)?;
    }
    (last < t.storage::<f32>().len()).then_some(strides)
}

/// Batched `a (.., m, k) @ b (.., k, n)` with equal batch dims, for f32 CPU primitives of any
/// non-negative strides: the few-row kernel for at most [`FEW_ROWS`] rows, else the `gemm`
/// crate directly into a fresh buffer (burn-flex's matmul zero-fills and then re-copies its
/// output buffer for alignment).
pub fn matmul(a: &Prim, b: &Prim) -> Option<Prim> {
    if let Some(y) = matmul_few_rows(a, b) {
        return Some(y);
    }
    let (ta, tb) = (flex(a)?, flex(b)?);
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    if r < 2 || bd.len() != r || ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 2] {
        return None;
    }
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    let (sa, sb) = (checked_strides(ta)?, checked_strides(tb)?);
    let batch_dims = &ad[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let mut out_dims = ad[..r - 1].to_vec();
    out_dims.push(n);
    let size = m * n;
    let mut out: Vec<f32> = Vec::with_capacity(batch * size);
    // Element offsets of matrix `i` of the batch in a and b.
    let offset = |i: usize, strides: &[isize], start: usize| -> isize {
        let (mut rem, mut off) = (i, start as isize);
        for d in (0..batch_dims.len()).rev() {
            off += (rem % batch_dims[d]) as isize * strides[d];
            rem /= batch_dims[d];
        }
        off
    };
    let (sta, stb) = (ta.storage::<f32>(), tb.storage::<f32>());
    let (a0, b0) = (ta.layout().start_offset(), tb.layout().start_offset());
    let run = |i: usize, dst: *mut f32, par: gemm::Parallelism| {
        // SAFETY: `checked_strides` bounded every element of a and b reachable through these
        // offsets and strides; `dst` has room for the `(m, n)` result written row-major; with
        // `read_dst` false gemm only writes it.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                1,
                n as isize,
                false,
                sta.as_ptr().offset(offset(i, &sa, a0)),
                sa[r - 1],
                sa[r - 2],
                stb.as_ptr().offset(offset(i, &sb, b0)),
                sb[r - 1],
                sb[r - 2],
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    };
    if m <= FEW_ROWS && (sb[r - 1] == 1 || sb[r - 2] == 1) {
        // Decode-sized products in a batch (attention over a KV cache): one matrix per task,
        // b streamed by rows or by columns without packing.
        let mut out = vec![0f32; batch * size];
        let one = |(i, y): (usize, &mut [f32])| {
            let (oa, ob) = (offset(i, &sa, a0) as usize, offset(i, &sb, b0) as usize);
            let (ra, ca) = (sa[r - 2] as usize, sa[r - 1] as usize);
            let a_rows: Vec<f32> = (0..m * k)
                .map(|e| sta[oa + (e / k) * ra + (e % k) * ca])
                .collect();
            if sb[r - 1] == 1 {
                let ld = sb[r - 2] as usize;
                let b_rows = &stb[ob..ob + (k - 1) * ld + n];
                few_rows_by_rows(y, &a_rows, b_rows, k, n, ld, 0, k);
            } else {
                let ld = sb[r - 1] as usize;
                let b_cols = &stb[ob..ob + (n - 1) * ld + k];
                few_rows_by_cols(y, &a_rows, b_cols, k, ld, 0);
            }
        };
        if batch * size * k <= 1 << 20 {
            out.chunks_mut(size).enumerate().for_each(one); // small: no hand-off to the pool
        } else {
            out.par_chunks_mut(size).enumerate().for_each(one);
        }
        return Some(from_vec(out, out_dims));
    }
    let spare = &mut out.spare_capacity_mut()[..batch * size];
    if m * n * k >= GEMM_PARALLEL_MACS || batch == 1 {
        let par = if m * n * k >= GEMM_PARALLEL_MACS {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        } else {
            gemm::Parallelism::None
        };
        for (i, dst) in spare.chunks_mut(size).enumerate() {
            run(i, dst.as_mut_ptr().cast(), par);
        }
    } else {
        spare
            .par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, dst)| run(i, dst.as_mut_ptr().cast(), gemm::Parallelism::None));
    }
    // SAFETY: every matrix of the batch was written in full above (k >= 1: `checked_strides`
    // refuses empty dims).
    unsafe { out.set_len(batch * size) };
    Some(from_vec(out, out_dims))
}

// ---------------------------------------------------------------- optimizer

/// The AdamW hyper-parameters of one update (bias corrections of the step included).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// `(β1, β2)`.
    pub betas: (f64, f64),
    /// Denominator epsilon.
    pub eps: f64,
    /// Weight decay: decoupled (`w ← w(1 - lr·wd)`) when `decoupled`, else added to the gradient.
    pub weight_decay: f64,
    /// AdamW (true) or Adam with L2 (false).
    pub decoupled: bool,
    /// `1 - β1^t`.
    pub bias_correction1: f64,
    /// `1 - β2^t`.
    pub bias_correction2: f64,
}

/// [`AdamStep`] as the f32 factors of the update.
struct AdamConsts {
    b1: f32,
    b2: f32,
    eps: f32,
    /// L2 coefficient added to the gradient (Adam), 0 for AdamW.
    l2: f32,
    /// `1 - lr·wd` for AdamW, 1 for Adam.
    shrink: f32,
    /// `lr / (1 - β1^t)`.
    step: f32,
    /// `1 / √(1 - β2^t)`.
    inv_sqrt_bc2: f32,
}

simd_kernel! {
    fn adamw_chunk(o: &mut [f32], w: &[f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts) {
        for i in 0..o.len().min(w.len()).min(g.len()).min(m.len()).min(v.len()) {
            let gi = g[i] + k.l2 * w[i];
            let mi = m[i] + (gi - m[i]) * (1.0 - k.b1); // lerp, as torch
            let vi = v[i] * k.b2 + gi * gi * (1.0 - k.b2);
            m[i] = mi;
            v[i] = vi;
            let denom = vi.sqrt() * k.inv_sqrt_bc2 + k.eps;
            o[i] = w[i] * k.shrink - k.step * (mi / denom);
        }
    }
}

/// One Adam(W) update as PyTorch's: returns the new `(w, m, v)`; `m` and `v` are updated in
/// place when no other handle shares them. Callers check [`applies`] on all four first: `None`
/// after `m` and `v` were moved in would lose them.
pub fn adamw(w: &Prim, g: &Prim, m: Prim, v: Prim, h: &AdamStep) -> Option<(Prim, Prim, Prim)> {
    let (ws, gs) = (values(w)?, values(g)?);
    let dims = w.dims();
    if g.dims() != dims || m.dims() != dims || v.dims() != dims {
        return None;
    }
    let mut m = owned(take_flex(m).ok()?)?;
    let mut v = owned(take_flex(v).ok()?)?;
    let k = AdamConsts {
        b1: h.betas.0 as f32,
        b2: h.betas.1 as f32,
        eps: h.eps as f32,
        l2: if h.decoupled {
            0.0
        } else {
            h.weight_decay as f32
        },
        shrink: if h.decoupled {
            (1.0 - h.lr * h.weight_decay) as f32
        } else {
            1.0
        },
        step: (h.lr / h.bias_correction1) as f32,
        inv_sqrt_bc2: (1.0 / h.bias_correction2.sqrt()) as f32,
    };
    let mut out = vec![0f32; ws.len()];
    {
        let ms = unique_values(&mut m)?;
        let vs = unique_values(&mut v)?;
        out.par_chunks_mut(CHUNK)
            .zip(ws.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
            .zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK)))
            .for_each(|((o, (w, g)), (m, v))| adamw_chunk(o, w, g, m, v, &k));
    }
    Some((from_vec(out, dims), wrap(m), wrap(v)))
}
