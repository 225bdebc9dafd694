//! Finite-difference gradient checking, public so users can check their own compositions.

use crate::{DType, Device, Error, Generator, Result, Tensor, no_grad};

use crate::Backward;

/// What [`gradcheck`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Largest `|analytic - numeric|` over every input element.
    pub max_abs_error: f64,
    /// Number of input elements checked.
    pub elements: usize,
}

/// Checks the analytic gradient of `f` at `inputs` against central finite differences, in
/// F64 on the CPU (the inputs are converted).
///
/// The scalar checked is `Σ f(x) · v` for a fixed random `v`, so every output element counts.
/// Fails with an [`Error::Autograd`] naming the input and element whose gradients differ by
/// more than `atol + rtol · |numeric|`.
///
/// ```
/// use ember_core::gradcheck;
/// use ember_core::{DType, Device, Tensor};
/// let x = Tensor::randn(&[3, 4], DType::F64, Device::Cpu)?;
/// let report = gradcheck(|x| x[0].tanh()?.sum(&[-1], false), &[x], 1e-6, 1e-7, 1e-5)?;
/// assert!(report.max_abs_error < 1e-7);
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    eps: f64,
    atol: f64,
    rtol: f64,
) -> Result<GradcheckReport> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            let t = t.detach().to_device(Device::Cpu)?;
            if t.dtype().is_float() {
                t.to_dtype(DType::F64)?.requires_grad(true)
            } else {
                Ok(t)
            }
        })
        .collect::<Result<_>>()?;
    let y = f(&leaves)?;
    let v = Tensor::randn_with(
        &mut Generator::new(0x5eed),
        y.dims(),
        DType::F64,
        Device::Cpu,
    )?;
    let grads = y.backward_with(&v)?;

    let _guard = no_grad();
    // Σ f(x)·v at the given input values.
    let probe = |xs: &[Tensor]| -> Result<f64> {
        f(xs)?
            .to_dtype(DType::F64)?
            .mul(&v)?
            .sum(&[], false)?
            .to_scalar::<f64>()
    };
    let mut report = GradcheckReport {
        max_abs_error: 0.0,
        elements: 0,
    };
    for (k, leaf) in leaves.iter().enumerate() {
        if !leaf.is_tracked() {
            continue;
        }
        let analytic = match grads.get(leaf) {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; leaf.numel()],
        };
        let base = leaf.to_vec::<f64>()?;
        for i in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut vals = base.clone();
                vals[i] += delta;
                let mut xs: Vec<Tensor> = leaves.iter().map(Tensor::detach).collect();
                xs[k] = Tensor::from_vec(vals, leaf.dims(), Device::Cpu)?;
                probe(&xs)
            };
            let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
            let err = (analytic[i] - numeric).abs();
            if err.is_nan() || err > atol + rtol * numeric.abs() {
                return Err(Error::Autograd {
                    msg: format!(
                        "gradcheck: input {k} element {i}: analytic {} vs numeric {numeric} \
                         (|diff| {err:e})",
                        analytic[i]
                    ),
                });
            }
            report.max_abs_error = report.max_abs_error.max(err);
            report.elements += 1;
        }
    }
    Ok(report)
}
