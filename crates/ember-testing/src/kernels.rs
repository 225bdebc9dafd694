//! Kernel tests' shared check: an op run on f32 inputs (where Ember's CPU kernels run) against
//! the same op on the same values in f64 (no f64 kernel exists, so the composed definition
//! runs), forward and backward, with the kernel entries each run used asserted.

use ember_core::{Backward, DType, Device, Generator, Impl, Result, Tensor, trace_kernels};

use crate::rng;
use crate::worst_error as worst;

/// Panics unless `ours` is within `rtol`/`atol` of `reference` everywhere (naming `name`).
pub fn check(name: &str, ours: &Tensor, reference: &Tensor, rtol: f64, atol: f64) -> Result<()> {
    let w = worst(ours, reference, rtol, atol)?;
    assert!(
        w <= 1.0,
        "{name}: error {w:.3} x tolerance (rtol {rtol}, atol {atol})"
    );
    Ok(())
}

/// Random normals scaled by `spread`, in f32 on the CPU.
pub fn input(dims: &[usize], spread: f64) -> Result<Tensor> {
    rng::randn(dims, DType::F32)?.mul_scalar(spread)
}

/// Tolerances `(rtol, atol)` of the forward values and of the gradients.
pub type Tols = ((f64, f64), (f64, f64));

/// Runs `f` forward and backward (upstream gradient `up`) on `inputs` in f32 and in f64;
/// checks that the f32 run used the kernel entries `kernels` with an Ember kernel and the f64
/// run the composed definition, and that values and input gradients agree.
pub fn kernel_vs_composed(
    name: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    kernels: &[&str],
    ((frtol, fatol), (grtol, gatol)): Tols,
) -> Result<()> {
    let run = |dtype: DType| -> Result<(Tensor, Vec<Tensor>, Vec<ember_core::KernelUse>)> {
        let xs: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_dtype(dtype)?.requires_grad(true))
            .collect::<Result<_>>()?;
        let (out, used) = trace_kernels(|| -> Result<_> {
            let y = f(&xs)?;
            // A private generator: tests run in parallel and share the global one.
            let up = Tensor::randn_with(&mut Generator::new(99), y.dims(), dtype, Device::Cpu)?;
            let grads = y.backward_with(&up)?;
            Ok((y, grads))
        });
        let (y, grads) = out?;
        let gs = xs
            .iter()
            .map(|x| grads.get(x).cloned().expect("every input gets a gradient"))
            .collect();
        Ok((y, gs, used))
    };
    let (y32, g32, used32) = run(DType::F32)?;
    let (y64, g64, used64) = run(DType::F64)?;
    for entry in kernels {
        let ours: Vec<Impl> = used32
            .iter()
            .filter(|u| u.entry == *entry)
            .map(|u| u.implementation)
            .collect();
        assert!(
            !ours.is_empty() && ours.iter().all(|i| *i != Impl::Composed),
            "{name}: f32 must run Ember's kernel for {entry}, ran {ours:?}"
        );
        assert!(
            used64
                .iter()
                .filter(|u| u.entry == *entry)
                .all(|u| u.implementation == Impl::Composed),
            "{name}: f64 must run the composed definition of {entry}"
        );
    }
    check(name, &y32, &y64, frtol, fatol)?;
    for (i, (a, b)) in g32.iter().zip(&g64).enumerate() {
        check(&format!("{name} gradient {i}"), a, b, grtol, gatol)?;
    }
    Ok(())
}

/// The implementations `f` used for kernel entry `entry`, with `f`'s result.
pub fn used<T>(entry: &str, f: impl FnOnce() -> Result<T>) -> Result<(T, Vec<Impl>)> {
    let (out, uses) = trace_kernels(f);
    let impls = uses
        .iter()
        .filter(|u| u.entry == entry)
        .map(|u| u.implementation)
        .collect();
    Ok((out?, impls))
}
