//! Define-by-run reverse-mode automatic differentiation over every op of `ember-tensor`.
//!
//! Ops record themselves on their result when an input requires a gradient
//! ([`Tensor::requires_grad`](ember_tensor::Tensor::requires_grad)) and no [`no_grad`] guard is alive. [`Backward::backward`] walks
//! the recorded graph from a scalar loss in reverse, applying one rule per op (all in
//! `rules.rs`, one exhaustive `match`), and returns a [`Gradients`] store keyed by tensor
//! identity. The graph is freed as it is consumed.
//!
//! ```
//! use ember_autograd::Backward;
//! use ember_tensor::{DType, Device, Tensor};
//!
//! let w = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3], Device::Cpu)?.requires_grad(true)?;
//! let loss = w.square()?.sum(&[], false)?; // Σ w²
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().to_vec::<f32>()?, vec![2.0, -4.0, 6.0]); // 2w
//! # Ok::<(), ember_tensor::Error>(())
//! ```
#![warn(missing_docs)]

mod engine;
mod gradcheck;
mod rules;

pub use ember_tensor::{Op, OpKind, is_grad_enabled, no_grad};
pub use engine::{Backward, Gradients};
pub use gradcheck::{GradcheckReport, gradcheck};
