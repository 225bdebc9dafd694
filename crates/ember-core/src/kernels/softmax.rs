//! Softmax and log-softmax along a dim: forward and backward.
//!
//! The softmax forward is burn's fused primitive on every device. The rest: f32 on the CPU
//! along the last dim, one pass per row (`cpu::softmax`), bf16 on the CPU by the same kernels
//! on inputs widened to f32; elsewhere the composed definitions below, which are the
//! reference.

use super::cast::widened_bf16;
use super::cpu::softmax as cpu;
use super::prim;
use super::trace::{Impl, note};
use crate::{DType, Result, Tensor};

/// `exp(x) / Σ exp(x)` along `dim` (`x` of rank >= 1).
pub(crate) fn softmax(x: &Tensor, dim: usize) -> Tensor {
    x.wrap(prim::softmax(x.prim(), dim), x.shape())
}

/// The gradient of [`softmax`] from its output `y`: `y · (g - Σ_dim g·y)`.
pub(crate) fn softmax_backward(y: &Tensor, g: &Tensor, dim: usize) -> Result<Tensor> {
    if let (Some(y), Some(g)) = (widened_bf16(y)?, widened_bf16(g)?) {
        note("softmax_backward", Impl::CpuBf16ViaF32);
        return softmax_backward(&y, &g, dim)?.to_dtype(DType::BF16);
    }
    if dim + 1 == y.rank()
        && let Some(p) = cpu::softmax_backward(&y.prim(), &g.prim(), 1.0)
    {
        note("softmax_backward", Impl::CpuF32);
        return Ok(y.wrap(p, y.shape()));
    }
    note("softmax_backward", Impl::Composed);
    let dot = g.mul(y)?.sum(&[dim as isize], true)?;
    y.mul(&g.sub(&dot)?)
}

/// `x - log Σ exp(x)` along `dim`.
pub(crate) fn log_softmax(x: &Tensor, dim: usize) -> Result<Tensor> {
    if let Some(x) = widened_bf16(x)? {
        note("log_softmax", Impl::CpuBf16ViaF32);
        return log_softmax(&x, dim)?.to_dtype(DType::BF16);
    }
    if dim + 1 == x.rank()
        && let Some(p) = cpu::log_softmax(&x.prim())
    {
        note("log_softmax", Impl::CpuF32);
        return Ok(x.wrap(p, x.shape()));
    }
    note("log_softmax", Impl::Composed);
    let lse = x.logsumexp(&[dim as isize], true)?;
    x.sub(&lse)
}

/// The gradient of [`log_softmax`] from its output `y`: `g - exp(y) · Σ_dim g`.
pub(crate) fn log_softmax_backward(y: &Tensor, g: &Tensor, dim: usize) -> Result<Tensor> {
    if let (Some(y), Some(g)) = (widened_bf16(y)?, widened_bf16(g)?) {
        note("log_softmax_backward", Impl::CpuBf16ViaF32);
        return log_softmax_backward(&y, &g, dim)?.to_dtype(DType::BF16);
    }
    if dim + 1 == y.rank()
        && let Some(p) = cpu::log_softmax_backward(&y.prim(), &g.prim())
    {
        note("log_softmax_backward", Impl::CpuF32);
        return Ok(y.wrap(p, y.shape()));
    }
    note("log_softmax_backward", Impl::Composed);
    let total = g.sum(&[dim as isize], true)?;
    g.sub(&y.exp()?.mul(&total)?)
}
