//! Automatic mixed precision, as `torch.autocast`: inside an [`autocast`] scope each op runs
//! in the dtype PyTorch's CPU autocast gives it.
//!
//! | ops | run in |
//! |---|---|
//! | `matmul`, `linear`, `addmm`, `scaled_dot_product_attention` | the autocast dtype (bf16 or f16) |
//! | `cross_entropy`, `binary_cross_entropy_with_logits`, `mse` (`ember_nn::loss`) | f32 |
//! | `cat`, `stack` | the widest input dtype |
//! | everything else (norms, softmax, activations, reductions, elementwise) | its input's dtype |
//!
//! On the CPU, Ember's fused kernels (norms, softmax, attention, cross-entropy, GELU) compute
//! bf16 inputs in f32 and round only their result, as PyTorch's. Casts are ordinary recorded ops, so the
//! gradient of an f32 parameter used by a bf16 product arrives in f32. Within one scope a
//! parameter (a leaf that requires a gradient) is cast once and the cast reused, so a weight
//! used by several products costs one conversion; the cache empties when the outermost scope
//! ends. Wrap the forward pass and the loss, not the backward pass or the optimizer step
//! (parameters change there).
//!
//! ```
//! use ember_core::{Backward, DType, Device, Tensor, autocast::autocast};
//! let x = Tensor::randn(&[4, 8], DType::F32, Device::Cpu)?;
//! let w = Tensor::randn(&[8, 3], DType::F32, Device::Cpu)?.requires_grad(true)?;
//! let loss = {
//!     let _scope = autocast(DType::BF16)?;
//!     let y = x.matmul(&w)?; // (4, 3) bf16
//!     assert_eq!(y.dtype(), DType::BF16);
//!     y.softmax(-1)?.sum(&[], false)? // bf16, as in PyTorch
//! };
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().dtype(), DType::F32); // master weights get f32
//! # Ok::<(), ember_core::Error>(())
//! ```

pub use crate::base::autocast_mode::{AutocastGuard, autocast, autocast_dtype, autocast_off};
use crate::base::autocast_mode::{cached_cast_of, store_cast};
use crate::{DType, Result, Tensor, is_grad_enabled};

/// `t` as an op of the low-precision list receives it: cast to the autocast dtype when it is
/// a float tensor other than f64 (which autocast leaves alone); unchanged outside a scope.
/// For custom ops that should run in low precision like `matmul`.
pub fn lower(t: &Tensor) -> Result<Tensor> {
    match autocast_dtype() {
        Some(d) if eligible(t, d) => cached_cast(t, d),
        _ => Ok(t.clone()),
    }
}

/// `t` as an op of the f32 list receives it: a bf16 or f16 tensor cast to f32 inside an
/// autocast scope; unchanged otherwise. For custom losses that should run in f32.
pub fn full(t: &Tensor) -> Result<Tensor> {
    match autocast_dtype() {
        Some(_) if eligible(t, DType::F32) => t.to_dtype(DType::F32),
        _ => Ok(t.clone()),
    }
}

/// Autocast converts float tensors other than f64 that are not in the target dtype already.
fn eligible(t: &Tensor, to: DType) -> bool {
    t.dtype().is_float() && t.dtype() != DType::F64 && t.dtype() != to
}

/// The cast of a parameter is made once per scope; other tensors are cast each time.
fn cached_cast(t: &Tensor, to: DType) -> Result<Tensor> {
    if !t.is_leaf_param() {
        return t.to_dtype(to);
    }
    let key = (t.id(), to, is_grad_enabled());
    if let Some(hit) = cached_cast_of(&key) {
        // A backward pass inside the scope consumed the recorded cast: make a fresh one.
        if !hit.is_consumed() {
            return Ok(hit);
        }
    }
    let cast = t.to_dtype(to)?;
    store_cast(key, cast.clone());
    Ok(cast)
}
