//! bf16 on the CPU: burn-flex's bf16 storage read as raw `u16` bits, conversions to and from
//! f32 that vectorize, and the run-time check for AVX512_BF16 dot products.
//!
//! A bf16 value is the upper half of an f32: widening is a shift, narrowing rounds to the
//! nearest even upper half (NaN stays NaN), exactly as `half::bf16::from_f32`.

use burn_backend::{Shape, TensorData};
use burn_dispatch::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn_flex::FlexTensor;
use half::bf16;
use rayon::prelude::*;

use super::simd::{CHUNK, simd_kernel};
use super::storage::{from_vec, values};
use crate::DType;
use crate::kernels::prim::Prim;

/// True when this CPU has `vdpbf16ps` (AVX512_BF16) and the AVX-512 kernels are allowed
/// (`EMBER_SIMD` not capping below AVX-512).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_bf16_dot() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512bf16") && super::simd::simd_level() == 2
    })
}

/// No bf16 dot products off x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_bf16_dot() -> bool {
    false
}

/// The burn-flex tensor of a bf16 CPU primitive.
pub(crate) fn flex_bf16(p: &Prim) -> Option<&FlexTensor> {
    if p.dtype() != DType::BF16 {
        return None;
    }
    #[allow(unreachable_patterns)]
    match &p.inner_ref().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => Some(t),
        _ => None,
    }
}

/// The whole storage of a bf16 burn-flex tensor as raw bits.
pub(crate) fn bits(t: &FlexTensor) -> &[u16] {
    bytemuck::cast_slice(t.storage::<bf16>())
}

/// The values of a contiguous bf16 CPU primitive as raw bits, in row-major order.
pub(crate) fn values_bf16(p: &Prim) -> Option<&[u16]> {
    let t = flex_bf16(p)?;
    let n = t.layout().num_elements();
    let (start, end) = t.layout().contiguous_offsets()?;
    (end - start == n).then(|| &bits(t)[start..end])
}

/// A new bf16 CPU primitive of shape `dims` holding the raw bits `values`.
pub(crate) fn from_bits(values: Vec<u16>, dims: Vec<usize>) -> Prim {
    let values: Vec<bf16> = bytemuck::cast_vec(values);
    let t = FlexTensor::from_data(TensorData::new(values, Shape::from(dims)));
    let inner = DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: Default::default(),
    };
    Prim::from_parts(inner, DType::BF16)
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
    pub(crate) fn widen_into(out: &mut [f32], x: &[u16]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = to_f32(v);
        }
    }
}

simd_kernel! {
    /// `out[i] = from_f32(x[i])`.
    pub(crate) fn narrow_into(out: &mut [u16], x: &[f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = from_f32(v);
        }
    }
}

/// A contiguous bf16 CPU primitive widened to an f32 one (in parallel blocks).
pub(crate) fn widen(p: &Prim) -> Option<Prim> {
    let x = values_bf16(p)?;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| widen_into(o, x));
    Some(from_vec(out, p.dims()))
}

/// A contiguous f32 CPU primitive rounded to a bf16 one (in parallel blocks).
pub(crate) fn narrow(p: &Prim) -> Option<Prim> {
    let x = values(p)?;
    let mut out = vec![0u16; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| narrow_into(o, x));
    Some(from_bits(out, p.dims()))
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
