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
//! Layers, from the top: `ops` (validation, dtype promotion, broadcasting, recording for
//! autograd), `autograd` (the recorded [`OpKind`]s, their backward rules, the engine), and
//! `kernels` (the only code that computes: burn's primitives, and fused CPU kernels chosen per
//! device and dtype). See `docs/architecture.md`.
#![warn(missing_docs)]

pub mod autocast;
mod autograd;
pub mod clock;
mod create;
mod device;
mod display;
mod dtype;
mod error;
mod kernels;
mod malloc;
pub mod memory;
mod ops;
mod overloads;
pub mod quant;
mod random;
mod sample;
mod shape;
mod tensor;
pub mod usage;

pub use autocast::{AutocastGuard, autocast, autocast_off};
pub use autograd::{
    Backward, GradcheckReport, Gradients, NoGradGuard, OpKind, checkpoint, gradcheck,
    is_grad_enabled, no_grad,
};
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, IoError, Result};
pub use half::{bf16, f16};
pub use kernels::{Impl, KernelUse, trace_kernels};
pub use ops::fused::{AttentionOpts, CrossEntropyOpts, Reduction};
pub use ops::{
    BinaryFn, CompareFn, ConvOpts, ELLIPSIS, Indexer, Ix, NEW_AXIS, Operand, PadMode, PoolOpts,
    ReduceFn, UnaryFn,
};
pub use random::{Generator, global_state, manual_seed, set_global_state};
pub use tensor::{Tensor, TensorId};

/// Fused updates for code above autograd (optimizers, caches): each picks its kernel in the
/// kernel layer, as every op does.
pub mod fused {
    pub use crate::kernels::adamw::{AdamStep, adamw_step};
    pub use crate::kernels::append::AppendBuffer;
}
