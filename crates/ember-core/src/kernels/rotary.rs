//! Rotary position embedding (`rotate_half`, as Llama's): forward and backward.
//!
//! f32 on the CPU, `(B, H, T, D)` inputs: one pass over the rows (`cpu::rotary`), the same
//! arithmetic as the composed definition. Elsewhere: the composed definition below, the
//! reference.

use super::cpu::{rotary as cpu, storage};
use super::trace::{Impl, note};
use crate::{Result, Tensor};

/// `(-x₂, x₁)` for the halves `x₁`, `x₂` of the last dim.
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let halves = x.chunk(2, -1)?;
    Tensor::cat(&[&halves[1].neg()?, &halves[0]], -1)
}

/// `x·cos + rotate_half(x)·sin`.
pub(crate) fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (pc, ps) = (cos.prim(), sin.prim());
    if let (Some(c), Some(s)) = (storage::values(&pc), storage::values(&ps))
        && let Some(y) = cpu::rotary(&x.prim(), c, s)
    {
        note("rotary", Impl::CpuF32);
        return Ok(x.wrap(y, x.shape()));
    }
    note("rotary", Impl::Composed);
    x.mul(cos)?.add(&rotate_half(x)?.mul(sin)?)
}

/// The gradient of [`rotary`] with respect to `x`: `g·cos + rotate_halfᵀ(g·sin)`, where
/// `rotate_halfᵀ(u) = (u₂, -u₁)`.
pub(crate) fn rotary_backward(cos: &Tensor, sin: &Tensor, g: &Tensor) -> Result<Tensor> {
    note("rotary_backward", Impl::Composed);
    let u = g.mul(sin)?;
    let halves = u.chunk(2, -1)?;
    g.mul(cos)?
        .add(&Tensor::cat(&[&halves[1], &halves[0].neg()?], -1)?)
}
