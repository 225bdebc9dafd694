//! Define-by-run reverse-mode automatic differentiation.
//!
//! Ops record themselves on their result when an input requires a gradient
//! ([`Tensor::requires_grad`](crate::Tensor::requires_grad)) and no [`no_grad`] guard is
//! alive. [`Backward::backward`] walks the recorded graph from a scalar loss in reverse,
//! applying one rule per op (all in `rules.rs`, one exhaustive `match`), and returns a
//! [`Gradients`] store keyed by tensor identity. The graph is freed as it is consumed.

mod checkpoint;
mod engine;
mod gradcheck;
mod graph;
mod op;
mod rules;

pub(crate) use checkpoint::Checkpointed;
pub use checkpoint::checkpoint;
pub use engine::{Backward, Gradients, LeafHook};
pub use gradcheck::{GradcheckReport, gradcheck};
pub(crate) use graph::Track;
pub use graph::{EnableGradGuard, NoGradGuard, enable_grad, is_grad_enabled, no_grad};
pub(crate) use op::Op;
pub use op::OpKind;
pub(crate) use rules::reads_output;
