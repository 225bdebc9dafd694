//! Gradient checkpointing: a function's activations are freed after its forward and
//! recomputed in the backward, trading compute for memory (as
//! `torch.utils.checkpoint.checkpoint`).
//!
//! The forward runs `f` recording as usual, then keeps only its output, recorded as one
//! [`Op::Checkpoint`] whose inputs are `x` and the tracked tensors `f` used from outside
//! (parameters): dropping `f`'s own graph frees its activations. The rule (in `rules.rs`)
//! runs `f` again from the same global generator state and autocast dtype (so dropout masks
//! repeat), backpropagates through it, and restores the generator: the gradients equal a run
//! without checkpointing bit for bit.

use std::collections::HashSet;
use std::sync::Arc;

use super::Op;
use super::graph::Track;
use crate::{DType, Error, Result, Tensor, TensorId};

/// The recomputed function.
type Recompute = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// What a checkpoint keeps: the function, and the state that makes it repeat.
#[derive(Clone)]
pub(crate) struct Checkpointed {
    f: Recompute,
    /// `x`, then the tracked leaves `f` used (parameters), in a fixed order
    pub(crate) inputs: Vec<Tensor>,
    rng: [u64; 4],
    autocast: Option<DType>,
}

impl std::fmt::Debug for Checkpointed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checkpointed({} inputs)", self.inputs.len())
    }
}

/// `f(x)` with `f`'s activations freed after the forward and recomputed in the backward.
///
/// `f` must be a pure function of `x` and of parameters (leaves): it may draw random numbers
/// (dropout; they are replayed), but a tracked non-leaf tensor captured from outside is an
/// error (pass it through `x`). Outside grad mode, or when nothing is tracked, it is `f(x)`.
///
/// ```
/// use ember_core::{Backward, DType, Device, Tensor, checkpoint};
/// let w = Tensor::ones(&[3, 3], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// let x = Tensor::ones(&[2, 3], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// let w2 = w.clone();
/// let y = checkpoint(move |x| x.matmul(&w2)?.tanh(), &x)?;
/// let g = y.sum(&[], false)?.backward()?;
/// assert_eq!(g.get(&w).unwrap().dims(), &[3, 3]);
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn checkpoint(
    f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
    x: &Tensor,
) -> Result<Tensor> {
    let rng = crate::global_state();
    let autocast = crate::base::autocast_mode::autocast_dtype();
    let start = TensorId::fresh();
    let y = f(x)?;
    if !y.is_tracked() || !super::is_grad_enabled() {
        return Ok(y);
    }
    let inputs = external_inputs(&y, x, start)?;
    let op = Op::Checkpoint(Checkpointed {
        f: Arc::new(f),
        inputs,
        rng,
        autocast,
    });
    // Only the output survives; f's graph (its activations) is dropped with `y`.
    Ok(y.with_track(Track::Op(Arc::new(std::sync::Mutex::new(Some(op))))))
}

/// `x` (when tracked) and the tracked tensors created before `f` ran that `y`'s graph
/// reaches: they must be `x` or leaves.
fn external_inputs(y: &Tensor, x: &Tensor, start: TensorId) -> Result<Vec<Tensor>> {
    let mut out = vec![x.clone()];
    let mut seen: HashSet<TensorId> = HashSet::from([x.id()]);
    let mut stack = vec![y.clone()];
    while let Some(t) = stack.pop() {
        let Some(op) = t.grad_op() else { continue };
        for input in op.inputs() {
            if !input.is_tracked() || !seen.insert(input.id()) {
                continue;
            }
            if input.id() >= start {
                stack.push(input.clone());
            } else if input.is_leaf_param() {
                out.push(input.clone());
            } else {
                return Err(Error::Autograd {
                    msg: format!(
                        "checkpoint: the function uses a tracked {:?} tensor computed outside \
                         it; pass it through the input, or detach it",
                        input.dims()
                    ),
                });
            }
        }
    }
    Ok(out)
}

impl Checkpointed {
    /// The gradients of the inputs: `f` recomputed from the forward's generator state and
    /// autocast dtype, then backpropagated with upstream gradient `g`.
    pub(crate) fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let saved = crate::global_state();
        crate::set_global_state(self.rng);
        let result = self.recompute(g);
        crate::set_global_state(saved);
        result
    }

    fn recompute(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let _grad = super::graph::enable_grad();
        let _autocast = match self.autocast {
            Some(d) => Some(crate::base::autocast_mode::autocast(d)?),
            None => None,
        };
        let x = &self.inputs[0];
        let x_in = if x.is_tracked() {
            x.detach().requires_grad(true)?
        } else {
            x.clone()
        };
        let y = (self.f)(&x_in)?;
        use super::Backward;
        let grads = y.backward_with(g)?;
        let mut out = vec![grads.get(&x_in).cloned()];
        out.extend(self.inputs[1..].iter().map(|p| grads.get(p).cloned()));
        Ok(out)
    }
}
