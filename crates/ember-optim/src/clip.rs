//! Gradient clipping by global norm.

use ember_core::Gradients;
use ember_core::{DType, Result, no_grad};
use ember_nn::Param;

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`, and
/// returns the norm before clipping, as `torch.nn.utils.clip_grad_norm_`.
pub fn clip_grad_norm(grads: &mut Gradients, params: &[Param], max_norm: f64) -> Result<f64> {
    let _guard = no_grad();
    let mut total = 0.0f64;
    for p in params {
        if let Some(g) = grads.get(&p.tensor()) {
            total += g
                .to_dtype(DType::F32)?
                .square()?
                .sum(&[], false)?
                .to_scalar::<f32>()? as f64;
        }
    }
    let norm = total.sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        for p in params {
            let t = p.tensor();
            if let Some(g) = grads.remove(&t) {
                grads.insert(&t, g.mul_scalar(coef)?);
            }
        }
    }
    Ok(norm)
}
