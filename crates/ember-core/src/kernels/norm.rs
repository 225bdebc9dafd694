//! Layer norm and RMS norm over the last dim: forward and backward.
//!
//! f32 on the CPU: one pass per row (`cpu::norm`), statistics recomputed in the backward;
//! bf16 on the CPU: the same kernels on inputs widened to f32. Elsewhere: the composed definitions below, which are the reference.

use super::cast::{in_f32, widened_bf16};
use super::cpu::norm as cpu;
use super::reduce::sum_to;
use super::trace::{Impl, note};
use crate::{DType, Result, Tensor};

/// For a bf16 `x` on the CPU: `x`, `g` and the parameters widened to f32, so that the f32
/// kernels run (PyTorch's CPU norms compute bf16 in f32 too); `None` otherwise.
#[allow(clippy::type_complexity)]
fn widened(
    x: &Tensor,
    g: Option<&Tensor>,
    [a, b]: [Option<&Tensor>; 2],
) -> Result<Option<(Tensor, Option<Tensor>, [Option<Tensor>; 2])>> {
    let Some(x) = widened_bf16(x)? else {
        return Ok(None);
    };
    Ok(Some((x, in_f32(g)?, [in_f32(a)?, in_f32(b)?])))
}

/// `(x - mean) / √(var + eps) · weight + bias` over the last dim (biased variance).
pub(crate) fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if let Some((x, _, [w, b])) = widened(x, None, [weight, bias])? {
        note("layer_norm", Impl::CpuBf16ViaF32);
        return layer_norm(&x, w.as_ref(), b.as_ref(), eps)?.to_dtype(DType::BF16);
    }
    let (w, b) = (weight.map(Tensor::prim), bias.map(Tensor::prim));
    if let Some(y) = cpu::layer_norm(&x.prim(), w.as_ref(), b.as_ref(), eps) {
        note("layer_norm", Impl::CpuF32);
        return Ok(x.wrap(y, x.shape()));
    }
    note("layer_norm", Impl::Composed);
    let mean = x.mean(&[-1], true)?; // (.., 1)
    let centered = x.sub(&mean)?;
    let var = centered.square()?.mean(&[-1], true)?;
    let mut y = centered.mul(&var.add_scalar(eps)?.rsqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

/// Gradients of [`layer_norm`]: one per input (`x`, then `weight` and `bias` where given).
pub(crate) fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    if let Some((x, Some(g), [w, b])) = widened(x, Some(g), [weight, bias])? {
        note("layer_norm_backward", Impl::CpuBf16ViaF32);
        return layer_norm_backward(&x, w.as_ref(), b.as_ref(), eps, &g);
    }
    let w = weight.map(Tensor::prim);
    let d = vec![x.dims()[x.rank() - 1]];
    if let Some((dx, dw, db)) =
        cpu::layer_norm_backward(&x.prim(), w.as_ref(), bias.is_some(), &g.prim(), eps)
    {
        note("layer_norm_backward", Impl::CpuF32);
        let mut out = vec![Some(x.wrap(dx, x.shape()))];
        if weight.is_some() {
            out.push(dw.map(|p| x.wrap(p, d.clone())));
        }
        if bias.is_some() {
            out.push(db.map(|p| x.wrap(p, d.clone())));
        }
        return Ok(out);
    }
    note("layer_norm_backward", Impl::Composed);
    let centered = x.sub(&x.mean(&[-1], true)?)?;
    let rstd = centered
        .square()?
        .mean(&[-1], true)?
        .add_scalar(eps)?
        .rsqrt()?; // (.., 1)
    let xhat = centered.mul(&rstd)?;
    let gxhat = match weight {
        Some(w) => g.mul(w)?,
        None => g.clone(),
    };
    let gx = gxhat
        .sub(&gxhat.mean(&[-1], true)?)?
        .sub(&xhat.mul(&gxhat.mul(&xhat)?.mean(&[-1], true)?)?)?
        .mul(&rstd)?;
    let mut out = vec![Some(gx)];
    if weight.is_some() {
        out.push(Some(sum_to(&g.mul(&xhat)?, &d)?));
    }
    if bias.is_some() {
        out.push(Some(sum_to(g, &d)?));
    }
    Ok(out)
}

/// `x / √(mean(x²) + eps) · weight` over the last dim.
pub(crate) fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if let Some((x, _, [w, _])) = widened(x, None, [weight, None])? {
        note("rms_norm", Impl::CpuBf16ViaF32);
        return rms_norm(&x, w.as_ref(), eps)?.to_dtype(DType::BF16);
    }
    let w = weight.map(Tensor::prim);
    if let Some(y) = cpu::rms_norm(&x.prim(), w.as_ref(), eps) {
        note("rms_norm", Impl::CpuF32);
        return Ok(x.wrap(y, x.shape()));
    }
    note("rms_norm", Impl::Composed);
    let r = x.square()?.mean(&[-1], true)?.add_scalar(eps)?.rsqrt()?;
    let y = x.mul(&r)?;
    match weight {
        Some(w) => y.mul(w),
        None => Ok(y),
    }
}

/// Gradients of [`rms_norm`]: one per input (`x`, then `weight` where given).
pub(crate) fn rms_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    if let Some((x, Some(g), [w, _])) = widened(x, Some(g), [weight, None])? {
        note("rms_norm_backward", Impl::CpuBf16ViaF32);
        return rms_norm_backward(&x, w.as_ref(), eps, &g);
    }
    let w = weight.map(Tensor::prim);
    let d = vec![x.dims()[x.rank() - 1]];
    if let Some((dx, dw)) = cpu::rms_norm_backward(&x.prim(), w.as_ref(), &g.prim(), eps) {
        note("rms_norm_backward", Impl::CpuF32);
        let mut out = vec![Some(x.wrap(dx, x.shape()))];
        if weight.is_some() {
            out.push(dw.map(|p| x.wrap(p, d.clone())));
        }
        return Ok(out);
    }
    note("rms_norm_backward", Impl::Composed);
    let r = x.square()?.mean(&[-1], true)?.add_scalar(eps)?.rsqrt()?; // (.., 1)
    let gxn = match weight {
        Some(w) => g.mul(w)?,
        None => g.clone(),
    };
    let dot = gxn.mul(x)?.mean(&[-1], true)?;
    let gx = gxn.mul(&r)?.sub(&x.mul(&r.powf(3.0)?)?.mul(&dot)?)?;
    let mut out = vec![Some(gx)];
    if weight.is_some() {
        out.push(Some(sum_to(&g.mul(x)?.mul(&r)?, &d)?));
    }
    Ok(out)
}
