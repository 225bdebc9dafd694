//! Optimizer steps: one Adam(W) update of a parameter and its moments, as
//! `torch.optim.AdamW` computes it.
//!
//! f32 on the CPU: one pass over the four tensors with the moments written in place
//! (`cpu::optim`). Elsewhere: the composed definition below, which is the reference.

use super::cpu::optim as cpu;
use super::trace::{Impl, note};
use crate::{AdamStep, Result, Tensor};

/// One Adam(W) step of validated tensors (see `ops::optim::adamw_step`): the new `(w, m, v)`,
/// the moments updated in place when nothing else holds them; never tracked.
pub(crate) fn adamw_step(
    w: &Tensor,
    g: &Tensor,
    m: Tensor,
    v: Tensor,
    step: &AdamStep,
) -> Result<(Tensor, Tensor, Tensor)> {
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
