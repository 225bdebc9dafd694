//! GELU, exact (erf) and tanh-approximated: forward and backward; SiLU's forward (its
//! backward is the autograd rule's composition); SwiGLU's product `silu(a)·b`: forward and
//! backward.
//!
//! f32 on the CPU: one vectorized pass (`cpu::activation`); bf16 on the CPU: one pass too,
//! each block widened to f32, computed and rounded back while in L1. Elsewhere: the composed definition below, which
//! is the reference.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use super::cpu::activation as cpu;
use super::prim::Prim;
use super::trace::{Impl, note};
use crate::BinaryFn::{self, Add, Mul};
use crate::{Result, Tensor, UnaryFn};

/// The cubic coefficient of the tanh approximation.
const GELU_C: f64 = 0.044715;

/// `x · sigmoid(x)`.
pub(crate) fn silu(x: Prim) -> Prim {
    if let Some(y) = cpu::silu(&x) {
        note("silu", Impl::CpuF32);
        return y;
    }
    note("silu", Impl::Composed);
    Mul.prim(x.clone(), UnaryFn::Sigmoid.prim(x))
}

/// `x/2 · (1 + erf(x/√2))`.
pub(crate) fn gelu(x: Prim) -> Prim {
    if let Some(y) = cpu::gelu(&x) {
        note("gelu", Impl::CpuF32);
        return y;
    }
    if let Some(y) = cpu::gelu_bf16(&x, false) {
        note("gelu", Impl::CpuBf16ViaF32);
        return y;
    }
    note("gelu", Impl::Composed);
    let e = Mul.prim_scalar(x.clone(), FRAC_1_SQRT_2);
    let e = Add.prim_scalar(UnaryFn::Erf.prim(e), 1.0);
    Mul.prim(Mul.prim_scalar(x, 0.5), e)
}

/// `g · (Φ(x) + x φ(x))`, the gradient of [`gelu`] at `x`.
pub(crate) fn gelu_backward(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    if let Some(p) = cpu::gelu_backward(&x.prim(), &g.prim()) {
        note("gelu_backward", Impl::CpuF32);
        return Ok(x.wrap(p, x.shape()));
    }
    if let Some(p) = cpu::gelu_backward_bf16(&x.prim(), &g.prim(), false) {
        note("gelu_backward", Impl::CpuBf16ViaF32);
        return Ok(x.wrap(p, x.shape()));
    }
    note("gelu_backward", Impl::Composed);
    let cdf = x
        .mul_scalar(FRAC_1_SQRT_2)?
        .erf()?
        .add_scalar(1.0)?
        .mul_scalar(0.5)?;
    let pdf = x
        .square()?
        .mul_scalar(-0.5)?
        .exp()?
        .mul_scalar(1.0 / (2.0 * PI).sqrt())?;
    g.mul(&cdf.add(&x.mul(&pdf)?)?)
}

/// `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub(crate) fn gelu_tanh(x: Prim) -> Prim {
    if let Some(y) = cpu::gelu_tanh(&x) {
        note("gelu_tanh", Impl::CpuF32);
        return y;
    }
    if let Some(y) = cpu::gelu_bf16(&x, true) {
        note("gelu_tanh", Impl::CpuBf16ViaF32);
        return y;
    }
    note("gelu_tanh", Impl::Composed);
    let k = (2.0 / PI).sqrt();
    let x3 = Mul.prim_scalar(BinaryFn::Pow.prim_scalar(x.clone(), 3.0), GELU_C);
    let inner = Add.prim(x.clone(), x3);
    let t = Add.prim_scalar(UnaryFn::Tanh.prim(Mul.prim_scalar(inner, k)), 1.0);
    Mul.prim(Mul.prim_scalar(x, 0.5), t)
}

/// The gradient of [`gelu_tanh`] at `x`, times `g`.
pub(crate) fn gelu_tanh_backward(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    if let Some(p) = cpu::gelu_tanh_backward(&x.prim(), &g.prim()) {
        note("gelu_tanh_backward", Impl::CpuF32);
        return Ok(x.wrap(p, x.shape()));
    }
    if let Some(p) = cpu::gelu_backward_bf16(&x.prim(), &g.prim(), true) {
        note("gelu_tanh_backward", Impl::CpuBf16ViaF32);
        return Ok(x.wrap(p, x.shape()));
    }
    note("gelu_tanh_backward", Impl::Composed);
    let k = (2.0 / PI).sqrt();
    let x2 = x.square()?;
    let u = x.add(&x.mul(&x2)?.mul_scalar(GELU_C)?)?.mul_scalar(k)?;
    let t = u.tanh()?;
    let du = x2
        .mul_scalar(3.0 * GELU_C)?
        .add_scalar(1.0)?
        .mul_scalar(k)?;
    let sech2 = t.square()?.neg()?.add_scalar(1.0)?;
    let d = t
        .add_scalar(1.0)?
        .mul_scalar(0.5)?
        .add(&x.mul(&sech2)?.mul(&du)?.mul_scalar(0.5)?)?;
    g.mul(&d)
}

/// SwiGLU's product `silu(a) · b` (`a`, `b` of one shape and dtype).
pub(crate) fn silu_mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if let Some(y) = cpu::silu_mul(&a.prim(), &b.prim()) {
        note("silu_mul", Impl::CpuF32);
        return Ok(a.wrap(y, a.shape()));
    }
    note("silu_mul", Impl::Composed);
    a.silu()?.mul(b)
}

/// The gradients of [`silu_mul`]: `g·b·σ(a)·(1 + a·(1 - σ(a)))` and `g·silu(a)`, recomputed
/// from `a` (nothing but the inputs is kept).
pub(crate) fn silu_mul_backward(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<[Tensor; 2]> {
    if let Some((ga, gb)) = cpu::silu_mul_backward(&a.prim(), &b.prim(), &g.prim()) {
        note("silu_mul_backward", Impl::CpuF32);
        return Ok([a.wrap(ga, a.shape()), a.wrap(gb, a.shape())]);
    }
    note("silu_mul_backward", Impl::Composed);
    let s = a.sigmoid()?;
    let silu = a.mul(&s)?;
    let ds = s.mul(&a.mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?)?;
    Ok([g.mul(b)?.mul(&ds)?, g.mul(&silu)?])
}
