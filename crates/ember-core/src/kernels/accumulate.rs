//! Gradient accumulation: `sum + g`, written into the running sum's buffer when nothing else
//! holds it (f32 and bf16 on the CPU: `cpu::accumulate::add_into`, `cpu::bf16::add_into`, the
//! bf16 sum computed in f32 and rounded once), else a new tensor.

use super::cpu::{accumulate as cpu, bf16};
use super::trace::{Impl, note};
use crate::{Result, Tensor};

/// `sum + g` for tensors of one shape, dtype and device; `sum` is consumed.
pub(crate) fn accumulate(sum: Tensor, g: &Tensor) -> Result<Tensor> {
    if sum.dims() != g.dims() || sum.dtype() != g.dtype() || sum.device() != g.device() {
        return sum.add(g);
    }
    let shape = sum.shape();
    let p = match cpu::add_into(sum.into_prim(), &g.prim()) {
        Ok(p) => {
            note("accumulate", Impl::CpuF32);
            return Ok(g.wrap(p, shape));
        }
        Err(p) => p,
    };
    match bf16::add_into(p, &g.prim()) {
        Ok(p) => {
            note("accumulate", Impl::CpuBf16);
            Ok(g.wrap(p, shape))
        }
        Err(p) => {
            note("accumulate", Impl::Composed);
            g.wrap(p, shape).add(g)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accumulate;
    use crate::{Device, Impl, Tensor, trace_kernels};

    #[test]
    fn adds_in_place_only_when_nothing_else_holds_the_sum() -> crate::Result<()> {
        let x = Tensor::from_vec(vec![1f32, 2.0, 3.0], &[3], Device::Cpu)?;
        let sum = Tensor::from_vec(vec![10f32, 20.0, 30.0], &[3], Device::Cpu)?;
        let (out, used) = trace_kernels(|| accumulate(sum, &x));
        assert_eq!(out?.to_vec::<f32>()?, [11.0, 22.0, 33.0]);
        assert_eq!(used[0].implementation, Impl::CpuF32);

        let shared = Tensor::from_vec(vec![10f32, 20.0, 30.0], &[3], Device::Cpu)?;
        let other = shared.clone();
        let (out, used) = trace_kernels(|| accumulate(shared, &x));
        assert_eq!(out?.to_vec::<f32>()?, [11.0, 22.0, 33.0]);
        assert_eq!(
            used[0].implementation,
            Impl::Composed,
            "a shared buffer is declined"
        );
        assert_eq!(
            other.to_vec::<f32>()?,
            [10.0, 20.0, 30.0],
            "and left untouched"
        );
        Ok(())
    }
}
