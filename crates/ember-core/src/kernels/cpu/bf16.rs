//! bf16 on the CPU: burn-flex's bf16 storage read as raw `u16` bits, conversions to and from
//! f32 that vectorize, maps of f32 kernels over bf16 (widened in L1-sized blocks) and bf16
//! gradient accumulation.
//!
//! A bf16 value is the upper half of an f32: widening is a shift, narrowing rounds to the
//! nearest even upper half (NaN stays NaN), exactly as `half::bf16::from_f32`.

use std::mem::MaybeUninit;

use burn_backend::{Shape, TensorData};

use burn_flex::FlexTensor;
use half::bf16;
use rayon::prelude::*;

use super::par::CHUNK;
use super::simd::simd_kernel;
pub(crate) use super::storage::flex_bf16;
use super::storage::{flex, strides_within, take_flex_of, wrap_as};
use crate::DType;
use crate::kernels::prim::Prim;

/// The whole storage of a bf16 burn-flex tensor as raw bits.
pub(crate) fn bits(t: &FlexTensor) -> &[u16] {
    bytemuck::cast_slice(t.storage::<bf16>())
}

/// A new bf16 CPU primitive of shape `dims` holding the raw bits `values`.
pub(crate) fn from_bits(values: Vec<u16>, dims: Vec<usize>) -> Prim {
    let values: Vec<bf16> = bytemuck::cast_vec(values);
    let t = FlexTensor::from_data(TensorData::new(values, Shape::from(dims)));
    wrap_as(t, DType::BF16)
}

/// `bits` as an f32.
#[inline(always)]
pub(crate) fn to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `x` rounded to the nearest bf16 (ties to even), NaN kept a quiet NaN; branch-free.
#[inline(always)]
pub(crate) fn from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let nan = ((b >> 16) | 0x40) as u16;
    if x.is_nan() { nan } else { rounded }
}

simd_kernel! {
    /// `out[i] = to_f32(x[i])`.
    pub(crate) fn widen_into(out: &mut [MaybeUninit<f32>], x: &[u16]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(to_f32(v));
        }
    }
}

simd_kernel! {
    /// `out[i] = from_f32(x[i])`.
    pub(crate) fn narrow_into(out: &mut [MaybeUninit<u16>], x: &[f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(from_f32(v));
        }
    }
}

/// `kernel` applied to `src` as seen through `layout` (non-negative strides, bounded by
/// `checked`), into a fresh buffer: the storage itself when the layout is a permutation that
/// covers it exactly (the result keeps the layout), else row by row (unit last stride) into
/// a contiguous result. `None` for other layouts.
fn convert<S: Sync, D: Send>(
    layout: &burn_flex::Layout,
    src: &[S],
    checked: Option<Vec<isize>>,
    kernel: fn(&mut [MaybeUninit<D>], &[S]),
) -> Option<(Vec<D>, Option<burn_flex::Layout>)> {
    let dims: Vec<usize> = layout.shape().iter().copied().collect();
    let n = layout.num_elements();
    let fill = |chunk: usize, f: &(dyn Fn(usize, &mut [MaybeUninit<D>]) + Sync)| -> Vec<D> {
        let mut out: Vec<D> = Vec::with_capacity(n);
        out.spare_capacity_mut()[..n]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| f(i * chunk, o));
        // SAFETY: `f` wrote every element of each chunk.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_bf16.rs.
        unsafe { out.set_len(n) };
        out
    };
    if covers_exactly(layout, src.len()) {
        let out = fill(CHUNK, &|at, o| kernel(o, &src[at..at + o.len()]));
        return Some((out, Some(layout.clone())));
    }
    let strides = checked?;
    let d = *dims.last()?;
    if d == 0 || strides[dims.len() - 1] != 1 && d > 1 {
        return None;
    }
    let off = layout.start_offset();
    let row_start = |r: usize| {
        let (mut rem, mut at) = (r, off);
        for k in (0..dims.len() - 1).rev() {
            at += (rem % dims[k]) * strides[k] as usize;
            rem /= dims[k];
        }
        at
    };
    let out = fill((CHUNK / d).max(1) * d, &|at, o| {
        for (j, row) in o.chunks_mut(d).enumerate() {
            let s = row_start(at / d + j);
            kernel(row, &src[s..s + row.len()]);
        }
    });
    Some((out, None))
}

/// True when `layout` (offset 0) addresses each of `len` storage elements exactly once: a
/// contiguous tensor or a permuted view of one.
fn covers_exactly(layout: &burn_flex::Layout, len: usize) -> bool {
    if layout.start_offset() != 0 || layout.num_elements() != len {
        return false;
    }
    let mut dims: Vec<(isize, usize)> = layout
        .strides()
        .iter()
        .copied()
        .zip(layout.shape().iter().copied())
        .filter(|&(_, d)| d != 1)
        .collect();
    dims.sort_unstable();
    let mut expected = 1isize;
    for (stride, d) in dims {
        if stride != expected {
            return false;
        }
        expected *= d as isize;
    }
    true
}

/// A CPU primitive with `values` as storage, in `layout` (contiguous over `dims` when `None`).
fn with_layout<E: burn_backend::Element>(
    values: Vec<E>,
    dims: Vec<usize>,
    layout: Option<burn_flex::Layout>,
    dtype: DType,
) -> Prim {
    let len = values.len();
    let mut t = FlexTensor::from_data(TensorData::new(values, Shape::from(vec![len])));
    t = match layout {
        Some(l) => FlexTensor::from_arc(t.data_arc(), l, t.dtype()),
        None => FlexTensor::from_arc(
            t.data_arc(),
            burn_flex::Layout::contiguous(Shape::from(dims)),
            t.dtype(),
        ),
    };
    wrap_as(t, dtype)
}

/// A bf16 CPU primitive widened to f32 (contiguous, a permuted view of a buffer, or rows with
/// a unit stride; `None` for other layouts).
pub(crate) fn widen(p: &Prim) -> Option<Prim> {
    let t = flex_bf16(p)?;
    let src = bits(t);
    let (out, layout) = convert(t.layout(), src, strides_within(t, src.len()), widen_into)?;
    Some(with_layout(out, p.dims(), layout, DType::F32))
}

/// An f32 CPU primitive rounded to bf16 (layouts as [`widen`]).
pub(crate) fn narrow(p: &Prim) -> Option<Prim> {
    let t = flex(p)?;
    let src = t.storage::<f32>();
    let (out, layout) = convert(t.layout(), src, strides_within(t, src.len()), narrow_into)?;
    let out: Vec<bf16> = bytemuck::cast_vec(out);
    Some(with_layout(out, p.dims(), layout, DType::BF16))
}

/// Values per step of the fused maps: widened, computed and narrowed while in L1.
const STEP: usize = 1024;

/// `kernel` over a contiguous bf16 CPU `x` in one pass: each block of [`STEP`] values is
/// widened into f32, computed and rounded back while in L1 (instead of a pass per step).
pub(crate) fn map1(x: &Prim, kernel: fn(&mut [f32], &[f32])) -> Option<Prim> {
    let xs = contiguous_bits(x)?;
    let out = fill_bits(xs.len(), |at, o| {
        let (mut wx, mut wy) = ([0f32; STEP], [0f32; STEP]);
        for (o, x) in o.chunks_mut(STEP).zip(xs[at..].chunks(STEP)) {
            let n = o.len();
            widen_slice(&mut wx[..n], x);
            kernel(&mut wy[..n], &wx[..n]);
            narrow_into(o, &wy[..n]);
        }
    });
    Some(from_bits(out, x.dims()))
}

/// [`map1`] for kernels of two inputs (an activation's gradient: `x` and `g`).
pub(crate) fn map2(x: &Prim, g: &Prim, kernel: fn(&mut [f32], &[f32], &[f32])) -> Option<Prim> {
    let (xs, gs) = (contiguous_bits(x)?, contiguous_bits(g)?);
    if xs.len() != gs.len() {
        return None;
    }
    let out = fill_bits(xs.len(), |at, o| {
        let (mut wx, mut wg, mut wy) = ([0f32; STEP], [0f32; STEP], [0f32; STEP]);
        let blocks = o
            .chunks_mut(STEP)
            .zip(xs[at..].chunks(STEP))
            .zip(gs[at..].chunks(STEP));
        for ((o, x), g) in blocks {
            let n = o.len();
            widen_slice(&mut wx[..n], x);
            widen_slice(&mut wg[..n], g);
            kernel(&mut wy[..n], &wx[..n], &wg[..n]);
            narrow_into(o, &wy[..n]);
        }
    });
    Some(from_bits(out, x.dims()))
}

simd_kernel! {
    /// `acc[i] = bf16(acc[i] + x[i])`, the sum computed in f32.
    fn add_assign_bits(acc: &mut [u16], x: &[u16]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a = from_f32(to_f32(*a) + to_f32(v));
        }
    }
}

simd_kernel! {
    fn add_chunk(o: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
            *o = a + b;
        }
    }
}

/// `acc + x` for contiguous bf16 CPU tensors of one shape (gradient accumulation), summed in
/// f32 and rounded once: into `acc`'s storage when nothing else holds it, else into a fresh
/// tensor. `acc` comes back in `Err` when the kernel does not apply.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn add_into(acc: Prim, x: &Prim) -> Result<Prim, Prim> {
    let Some(xs) = contiguous_bits(x) else {
        return Err(acc);
    };
    if acc.dims() != x.dims() || contiguous_bits(&acc).is_none() {
        return Err(acc);
    }
    let dims = acc.dims();
    let mut t = take_flex_of(acc, DType::BF16)?;
    let n = xs.len();
    let unique = t.layout().contiguous_offsets() == Some((0, n));
    if unique && let Some(bits) = t.try_storage_mut::<bf16>() {
        let acc: &mut [u16] = bytemuck::cast_slice_mut(&mut bits[..n]);
        acc.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(a, x)| add_assign_bits(a, x));
        return Ok(wrap_as(t, DType::BF16));
    }
    let shared = wrap_as(t, DType::BF16);
    let sum = map2(&shared, x, add_chunk).ok_or(shared)?;
    debug_assert_eq!(sum.dims(), dims);
    Ok(sum)
}

/// The raw bits of a contiguous bf16 CPU primitive.
pub(crate) fn contiguous_bits(p: &Prim) -> Option<&[u16]> {
    let t = flex_bf16(p)?;
    let (start, end) = t.layout().contiguous_offsets()?;
    (end - start == t.layout().num_elements()).then(|| &bits(t)[start..end])
}

/// A fresh buffer of `n` bf16 bits filled by `f(offset, block)` over parallel blocks.
fn fill_bits(n: usize, f: impl Fn(usize, &mut [MaybeUninit<u16>]) + Sync) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, o)| f(i * CHUNK, o));
    // SAFETY: `f` writes every element of its block (the maps narrow into all of it).
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_bf16.rs.
    unsafe { out.set_len(n) };
    out
}

/// `out[i] = to_f32(x[i])` into initialized memory.
pub(crate) fn widen_slice(out: &mut [f32], x: &[u16]) {
    // SAFETY: `MaybeUninit<f32>` has f32's layout, and `widen_into` writes initialized values.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_bf16.rs.
    let out = unsafe { std::mem::transmute::<&mut [f32], &mut [MaybeUninit<f32>]>(out) };
    widen_into(out, x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_half() {
        let xs = [
            0.0f32,
            -0.0,
            1.0,
            1.0 + 1.0 / 256.0, // a tie: rounds to even (down)
            1.0078125,
            1.0 + 3.0 / 256.0, // a tie: rounds to even (up)
            3.0e38,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -2.5e-3,
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
        ];
        for x in xs {
            assert_eq!(from_f32(x), bf16::from_f32(x).to_bits(), "{x:e}");
            assert_eq!(to_f32(from_f32(x)), bf16::from_f32(x).to_f32());
        }
        assert!(to_f32(from_f32(f32::NAN)).is_nan());
    }
}
