//! Optimizer steps as one op each, for code above autograd (`ember-optim`): validation, then
//! the kernel entry `kernels::optim`. Their results are never tracked.

use crate::kernels;
use crate::{AdamStep, Error, Result, Tensor};

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
    const OP: &str = "adamw_step";
    if !w.dtype().is_float() {
        return Err(Error::dtype(
            OP,
            &[w.dtype()],
            "updates float parameters only",
        ));
    }
    for t in [g, &m, &v] {
        w.same_device(OP, t)?;
        if t.dims() != w.dims() || t.dtype() != w.dtype() {
            return Err(Error::shape(
                OP,
                &[w.dims(), t.dims()],
                format!(
                    "the gradient and moments must match the parameter ({} {:?}), got {} {:?}",
                    w.dtype(),
                    w.dims(),
                    t.dtype(),
                    t.dims()
                ),
            ));
        }
    }
    kernels::optim::adamw_step(w, g, m, v, step)
}
