//! One Adam(W) update of a parameter and its moments, as `torch.optim.AdamW` computes it.
//!
//! f32 on the CPU: one pass over the four tensors with the moments written in place
//! (`cpu::optim`). Elsewhere: the composed definition below, which is the reference.

use super::cpu::optim as cpu;
use super::trace::{Impl, note};
use crate::{Result, Tensor, no_grad};

/// The hyper-parameters of one Adam(W) update, bias corrections of the step included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// `(β1, β2)`.
    pub betas: (f64, f64),
    /// Denominator epsilon, added after the bias-corrected square root (as torch).
    pub eps: f64,
    /// Weight decay: decoupled (`w ← w(1 - lr·wd)`) when `decoupled`, else added to the
    /// gradient.
    pub weight_decay: f64,
    /// AdamW (true) or Adam with L2 (false).
    pub decoupled: bool,
    /// `1 - β1^t`.
    pub bias_correction1: f64,
    /// `1 - β2^t`.
    pub bias_correction2: f64,
}

/// One Adam(W) step: the new `(w, m, v)` from the parameter `w`, its gradient `g` and the
/// moments `m`, `v` (all f32, one shape). The moments are updated in place when nothing else
/// holds them, so pass them by value; the result is never tracked by autograd.
///
/// ```
/// use ember_core::fused::{AdamStep, adamw_step};
/// use ember_core::{DType, Device, Tensor};
/// let w = Tensor::ones(&[3], DType::F32, Device::Cpu)?;
/// let g = Tensor::full(&[3], 0.5, DType::F32, Device::Cpu)?;
/// let (m, v) = (w.zeros_like()?, w.zeros_like()?);
/// let step = AdamStep {
///     lr: 0.1, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, decoupled: true,
///     bias_correction1: 0.1, bias_correction2: 0.001,
/// };
/// let (w, _m, _v) = adamw_step(&w, &g, m, v, &step)?;
/// assert!((w.to_vec::<f32>()?[0] - 0.9).abs() < 1e-6); // the first step moves by lr
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn adamw_step(
    w: &Tensor,
    g: &Tensor,
    m: Tensor,
    v: Tensor,
    step: &AdamStep,
) -> Result<(Tensor, Tensor, Tensor)> {
    let _guard = no_grad();
    let shape = w.shape();
    let (m, v) = match cpu::adamw(&w.prim(), &g.prim(), m.into_prim(), v.into_prim(), step) {
        Ok((w2, m2, v2)) => {
            note("adamw", Impl::CpuF32);
            let wrap = |p| w.wrap(p, shape.clone());
            return Ok((wrap(w2), wrap(m2), wrap(v2)));
        }
        Err((m, v)) => (w.wrap(m, shape.clone()), w.wrap(v, shape)),
    };
    note("adamw", Impl::Composed);
    let (b1, b2) = step.betas;
    let (lr, wd) = (step.lr, step.weight_decay);
    let (mut w, mut g) = (w.detach(), g.detach());
    if wd != 0.0 {
        if step.decoupled {
            w = w.mul_scalar(1.0 - lr * wd)?;
        } else {
            g = g.add(&w.mul_scalar(wd)?)?;
        }
    }
    let m = m.add(&g.sub(&m)?.mul_scalar(1.0 - b1)?)?; // lerp, as torch
    let v = v.mul_scalar(b2)?.add(&g.mul(&g)?.mul_scalar(1.0 - b2)?)?;
    let denom = v
        .sqrt()?
        .div_scalar(step.bias_correction2.sqrt())?
        .add_scalar(step.eps)?;
    let w = w.sub(&m.div(&denom)?.mul_scalar(lr / step.bias_correction1)?)?;
    Ok((w, m, v))
}
