//! Ember's `Tensor`: a cheaply cloned handle over an immutable, dynamically ranked value with a
//! run-time dtype and device, NumPy/PyTorch broadcasting, and `Result` errors.
//!
//! ```
//! use ember_tensor::{Device, Tensor};
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Device::Cpu)?;
//! let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3], Device::Cpu)?;
//! let c = a.add(&b)?; // (2, 3) + (3,) broadcasts
//! assert_eq!(c.to_vec::<f32>()?, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
//! # Ok::<(), ember_tensor::Error>(())
//! ```
#![warn(missing_docs)]

mod create;
mod display;
mod graph;
pub mod ops;
mod overloads;
mod random;
mod shape;
mod tensor;

pub use ember_backend::{DType, Device, Element, Error, Result, bf16, f16};
pub use graph::{BinaryFn, NoGradGuard, Op, OpKind, ReduceFn, UnaryFn, is_grad_enabled, no_grad};
pub use ops::fused::{
    AttentionOpts, CrossEntropyOpts, Reduction, attention_probs, ce_targets, repeat_heads,
};
pub use random::{Generator, global_state, manual_seed, set_global_state};
pub use tensor::{Tensor, TensorId};
