//! Gradient accumulation: `sum + g`, written into the running sum's buffer when nothing else
//! holds it (f32 on the CPU, `cpu::elementwise::add_into`), else a new tensor.

use super::cpu::elementwise as cpu;
use super::trace::{Impl, note};
use crate::{Result, Tensor};

/// `sum + g` for tensors of one shape, dtype and device; `sum` is consumed.
pub(crate) fn accumulate(sum: Tensor, g: &Tensor) -> Result<Tensor> {
    if sum.dims() != g.dims() || sum.dtype() != g.dtype() || sum.device() != g.device() {
        return sum.add(g);
    }
    let shape = sum.shape();
    match cpu::add_into(sum.into_prim(), &g.prim()) {
        Ok(p) => {
            note("accumulate", Impl::CpuF32);
            Ok(g.wrap(p, shape))
        }
        Err(p) => {
            note("accumulate", Impl::Composed);
            g.wrap(p, shape).add(g)
        }
    }
}
