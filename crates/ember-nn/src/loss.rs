//! Losses with PyTorch's definitions and defaults.

use ember_core::autocast::full;
use ember_core::{CrossEntropyOpts, Error, Result, Tensor};

use crate::Param;

/// Cross-entropy of logits `(N, C)` (or `(B, T, C)`, flattened) and I64 targets, ignoring
/// targets equal to -100 and averaging over the rest, as `F.cross_entropy` and HF's losses;
/// float targets of the logits' shape are probabilities (soft targets, as PyTorch).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let c = *logits.dims().last().unwrap_or(&0) as isize;
    let targets = match targets.dtype().is_float() && targets.dims() == logits.dims() {
        true => targets.reshape(&[-1, c])?,
        false => targets.reshape(&[-1])?,
    };
    logits
        .reshape(&[-1, c])?
        .cross_entropy(&targets, CrossEntropyOpts::default())
}

/// `cross_entropy(linear(x, weight, bias), targets)` for inputs `(.., K)` and a weight
/// parameter `(V, K)` (a head, or an embedding table used as a tied head), as a language
/// model's loss: one fused op that never holds the `(N, V)` logits
/// ([`Tensor::linear_cross_entropy`]) for a plain dense weight without bias; the two ops for a
/// quantized weight, a bias or an unmerged LoRA adapter. Targets equal to -100 are ignored;
/// the mean is over the others.
pub fn linear_cross_entropy(
    x: &Tensor,
    weight: &Param,
    bias: Option<&Param>,
    targets: &Tensor,
) -> Result<Tensor> {
    let k = *x.dims().last().unwrap_or(&0);
    let x = x.reshape(&[-1, k as isize])?; // (N, K)
    let targets = targets.reshape(&[-1])?; // (N,)
    if weight.quantized().is_some() || bias.is_some() || weight.active_adapter().is_some() {
        return cross_entropy(&crate::linear_with(&x, weight, bias)?, &targets);
    }
    crate::layers::check_input(&x, weight, 1)?;
    x.linear_cross_entropy(&weight.tensor(), &targets, CrossEntropyOpts::default())
}

/// Mean squared error, as `F.mse_loss` (shapes broadcast). Runs in f32 under autocast.
pub fn mse(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (input, target) = (full(input)?, full(target)?);
    input.sub(&target)?.square()?.mean(&[], false)
}

/// Binary cross-entropy on logits, as `F.binary_cross_entropy_with_logits` (mean), computed
/// stably: `max(x, 0) - x·y + log(1 + e^-|x|)`. Runs in f32 under autocast.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let logits = &full(logits)?;
    if !target.dtype().is_float() {
        return Err(Error::dtype(
            "binary_cross_entropy_with_logits",
            &[target.dtype()],
            format!(
                "targets must be float probabilities, got {}",
                target.dtype()
            ),
        ));
    }
    let target = target.to_dtype(logits.dtype())?;
    let softplus = logits.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?;
    let per = logits.relu()?.sub(&logits.mul(&target)?)?.add(&softplus)?;
    per.mean(&[], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::Device;

    #[test]
    fn bce_matches_the_definition() {
        let x = Tensor::from_vec(vec![0.5f32, -2.0, 30.0], &[3], Device::Cpu).unwrap();
        let y = Tensor::from_vec(vec![1.0f32, 0.0, 1.0], &[3], Device::Cpu).unwrap();
        let got = binary_cross_entropy_with_logits(&x, &y)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = ((1.0 + (-0.5f64).exp()).ln()
            + (1.0 + (-2.0f64).exp()).ln()
            + (1.0 + (-30.0f64).exp()).ln())
            / 3.0;
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
}
