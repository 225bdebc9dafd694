//! What autograd needs from the forward pass: how a tensor takes part (untracked, a leaf, or
//! the result of a recorded [`Op`]), recording, and the thread-local `no_grad` switch.
//!
//! Recording is opt-in by data flow: an op records its [`Op`] only when one of its inputs is
//! tracked and grad mode is on, so inference pays one branch per op.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use super::op::{Op, OpKind};
use crate::tensor::Tensor;

/// How a tensor takes part in autograd.
#[derive(Debug, Clone, Default)]
pub(crate) enum Track {
    /// Not tracked: no gradient flows to or through it.
    #[default]
    None,
    /// A leaf that requires a gradient (a parameter).
    Leaf,
    /// The result of a recorded op. The op is taken by backward unless the graph is retained.
    Op(Arc<Mutex<Option<Op>>>),
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// While alive, ops on this thread record nothing (as `torch.no_grad()`); guards nest.
///
/// ```
/// # use ember_core::{Tensor, Device, DType, no_grad};
/// let w = Tensor::ones(&[2], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// {
///     let _guard = no_grad();
///     assert!(!w.mul_scalar(2.0)?.is_tracked());
/// }
/// assert!(w.mul_scalar(2.0)?.is_tracked());
/// # Ok::<(), ember_core::Error>(())
/// ```
#[must_use = "the guard disables recording only while it is alive"]
pub fn no_grad() -> NoGradGuard {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    NoGradGuard { _private: () }
}

/// Re-enables recording when dropped. See [`no_grad`].
#[derive(Debug)]
pub struct NoGradGuard {
    _private: (),
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Turns recording back on inside [`no_grad`] (as `torch.enable_grad`), until dropped; a
/// checkpoint's recompute records its graph this way inside a backward rule.
///
/// ```
/// # use ember_core::{Tensor, Device, DType, enable_grad, no_grad};
/// let w = Tensor::ones(&[2], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// let _off = no_grad();
/// {
///     let _on = enable_grad();
///     assert!(w.mul_scalar(2.0)?.is_tracked());
/// }
/// assert!(!w.mul_scalar(2.0)?.is_tracked());
/// # Ok::<(), ember_core::Error>(())
/// ```
#[must_use = "the guard enables recording only while it is alive"]
pub fn enable_grad() -> EnableGradGuard {
    EnableGradGuard(NO_GRAD_DEPTH.with(|d| d.replace(0)))
}

/// Restores the `no_grad` depth [`enable_grad`] found, when dropped.
#[derive(Debug)]
pub struct EnableGradGuard(usize);

impl Drop for EnableGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(self.0));
    }
}

/// True unless a [`no_grad`] guard is alive on this thread.
pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

impl Tensor {
    /// Records `op` on this fresh result if grad mode is on and any of `inputs` is tracked.
    pub(crate) fn record(self, inputs: &[&Tensor], op: impl FnOnce() -> Op) -> Tensor {
        if !inputs.iter().any(|t| t.is_tracked()) || !is_grad_enabled() {
            return self;
        }
        self.with_track(Track::Op(Arc::new(Mutex::new(Some(op())))))
    }

    /// Records `op` as non-differentiable if its input is tracked.
    pub(crate) fn record_nondiff(self, name: &'static str, x: &Tensor) -> Tensor {
        self.record(&[x], || Op::NotDifferentiable { name, x: x.clone() })
    }

    /// True when gradients flow to or through this tensor.
    pub fn is_tracked(&self) -> bool {
        !matches!(self.track(), Track::None)
    }

    /// True for a leaf that requires a gradient (a parameter).
    pub fn is_leaf_param(&self) -> bool {
        matches!(self.track(), Track::Leaf)
    }

    /// The kind of op that produced this tensor, when it was recorded for autograd (as
    /// `tensor.grad_fn` in PyTorch); `None` for leaves, untracked tensors and consumed graphs.
    pub fn grad_fn(&self) -> Option<OpKind> {
        self.grad_op().map(|op| op.kind())
    }

    /// The recorded inputs of the op that produced this tensor (as `grad_fn.next_functions`);
    /// empty when [`Tensor::grad_fn`] is `None`.
    pub fn grad_fn_inputs(&self) -> Vec<Tensor> {
        self.grad_op()
            .map(|op| op.inputs().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The recorded op of a tracked op result, for the backward pass. `None` for leaves,
    /// untracked tensors and consumed graphs.
    pub(crate) fn grad_op(&self) -> Option<Op> {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => None,
        }
    }

    /// Takes the recorded op out of the graph (the backward pass frees the graph this way).
    pub(crate) fn take_grad_op(&self) -> Option<Op> {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).take(),
            _ => None,
        }
    }

    /// True for an op result whose recorded op a backward pass already consumed.
    pub(crate) fn is_consumed(&self) -> bool {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).is_none(),
            _ => false,
        }
    }
}
