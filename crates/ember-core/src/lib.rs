//! Ember's core: devices, dtypes and the one error type; the dynamically ranked [`Tensor`]
//! with PyTorch's semantics and every op's forward; define-by-run autograd with one backward
//! rule per op; and the one kernel layer below both, which computes each op with burn's
//! primitives or Ember's own fused kernels.
//!
//! ```
//! use ember_core::{Backward, Device, Tensor};
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Device::Cpu)?;
//! let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3], Device::Cpu)?;
//! let c = a.add(&b)?; // (2, 3) + (3,) broadcasts
//! assert_eq!(c.to_vec::<f32>()?, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
//!
//! let w = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3], Device::Cpu)?.requires_grad(true)?;
//! let loss = w.square()?.sum(&[], false)?; // Σ w²
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().to_vec::<f32>()?, vec![2.0, -4.0, 6.0]); // 2w
//! # Ok::<(), ember_core::Error>(())
//! ```
//!
//! Layers, from the bottom, each importing only from those below it (checked by
//! `scripts/check_layers.py`): `base` (dtypes, shapes, devices, errors, options, the op
//! tables, quantized formats), `kernels` (the only code that computes: burn's primitives and
//! Ember's own kernels, chosen per device and dtype), `autograd` (the recorded ops, their
//! backward rules, the engine) and `ops` (every `Tensor` method: validation, dtype promotion,
//! broadcasting, recording). See `docs/architecture.md`.
#![warn(missing_docs)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod autocast;
mod autograd;
mod base;
mod kernels;
mod ops;
mod tensor;
pub mod usage;

pub use autocast::{AutocastGuard, autocast, autocast_off};
pub use autograd::{
    Backward, EnableGradGuard, GradcheckReport, Gradients, LeafHook, NoGradGuard, OpKind,
    checkpoint, enable_grad, gradcheck, is_grad_enabled, no_grad,
};
pub use base::device::Device;
pub use base::dtype::{DType, Element};
pub use base::error::{Error, IoError, Result};
pub use base::options::{AdamStep, AttentionOpts, CrossEntropyOpts, Reduction};
pub use base::random::{Generator, global_state, manual_seed, set_global_state};
pub use base::tables::{BinaryFn, CompareFn, ReduceFn, UnaryFn};
pub use base::{clock, memory, quant};
pub use half::{bf16, f16};
pub use kernels::{Impl, KernelUse, amx_peak, cpu_kernels, trace_kernels};
pub use ops::{ConvOpts, ELLIPSIS, Indexer, Ix, NEW_AXIS, Operand, PadMode, PoolOpts};
pub use tensor::{Tensor, TensorId};

/// Fused updates for code above autograd (optimizers, caches): each validates its inputs and
/// picks its kernel in the kernel layer, as every op does.
pub mod fused {
    pub use crate::AdamStep;
    pub use crate::kernels::append::AppendBuffer;
    pub use crate::ops::optim::adamw_step;
}
