//! Activations, forward and backward, in one pass each: GELU (erf and tanh forms), SiLU,
//! and SwiGLU's `silu(a) · b`.

use rayon::prelude::*;

use super::bf16;
use super::par::CHUNK;
use super::simd::{erf, exp, map1, map2, simd_kernel, tanh, tanh_sech2};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// `1/√2`.
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

simd_kernel! {
    fn silu_chunk(o: &mut [f32], x: &[f32]) {
        for (o, &x) in o.iter_mut().zip(x) {
            *o = x / (1.0 + exp(-x));
        }
    }
}

/// SiLU, `x · sigmoid(x)`.
pub(crate) fn silu(x: &Prim) -> Option<Prim> {
    map1(x, silu_chunk)
}

simd_kernel! {
    fn silu_mul_chunk(o: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
            *o = a / (1.0 + exp(-a)) * b;
        }
    }
}

simd_kernel! {
    /// Both gradients of `silu(a)·b`: `ga = g·b·σ(a)·(1 + a·(1 - σ(a)))`, `gb = g·a·σ(a)`.
    fn silu_mul_backward_chunk(ga: &mut [f32], gb: &mut [f32], a: &[f32], b: &[f32], g: &[f32]) {
        let outs = ga.iter_mut().zip(gb.iter_mut());
        for (((ga, gb), &a), (&b, &g)) in outs.zip(a).zip(b.iter().zip(g)) {
            let s = 1.0 / (1.0 + exp(-a));
            *ga = g * b * s * (1.0 + a * (1.0 - s));
            *gb = g * a * s;
        }
    }
}

/// SwiGLU's product `silu(a) · b` for contiguous f32 tensors of one shape.
pub(crate) fn silu_mul(a: &Prim, b: &Prim) -> Option<Prim> {
    map2(a, b, silu_mul_chunk)
}

/// The gradients of [`silu_mul`] given the output gradient `g`, in one pass.
pub(crate) fn silu_mul_backward(a: &Prim, b: &Prim, g: &Prim) -> Option<(Prim, Prim)> {
    let (av, bv, gv) = (values(a)?, values(b)?, values(g)?);
    if a.dims() != b.dims() || a.dims() != g.dims() {
        return None;
    }
    let (mut ga, mut gb) = (vec![0f32; av.len()], vec![0f32; av.len()]);
    ga.par_chunks_mut(CHUNK)
        .zip(gb.par_chunks_mut(CHUNK))
        .zip(av.par_chunks(CHUNK).zip(bv.par_chunks(CHUNK)))
        .zip(gv.par_chunks(CHUNK))
        .for_each(|(((ga, gb), (a, b)), g)| silu_mul_backward_chunk(ga, gb, a, b, g));
    Some((from_vec(ga, a.dims()), from_vec(gb, a.dims())))
}

/// Exact GELU, `x/2 · (1 + erf(x/√2))`.
pub(crate) fn gelu(x: &Prim) -> Option<Prim> {
    map1(x, gelu_chunk)
}

/// Gradient of exact GELU: `g · (Φ(x) + x φ(x))`.
pub(crate) fn gelu_backward(x: &Prim, g: &Prim) -> Option<Prim> {
    map2(x, g, gelu_backward_chunk)
}

/// GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub(crate) fn gelu_tanh(x: &Prim) -> Option<Prim> {
    map1(x, gelu_tanh_chunk)
}

/// Gradient of the tanh-approximated GELU.
pub(crate) fn gelu_tanh_backward(x: &Prim, g: &Prim) -> Option<Prim> {
    map2(x, g, gelu_tanh_backward_chunk)
}

/// The same four kernels on contiguous bf16 tensors, computed in f32 block by block
/// (`bf16::map1`/`map2`): `[gelu, gelu_tanh]` forward and `[gelu, gelu_tanh]` backward.
pub(crate) fn gelu_bf16(x: &Prim, tanh: bool) -> Option<Prim> {
    bf16::map1(x, if tanh { gelu_tanh_chunk } else { gelu_chunk })
}

/// See [`gelu_bf16`].
pub(crate) fn gelu_backward_bf16(x: &Prim, g: &Prim, tanh: bool) -> Option<Prim> {
    let kernel = if tanh {
        gelu_tanh_backward_chunk
    } else {
        gelu_backward_chunk
    };
    bf16::map2(x, g, kernel)
}
