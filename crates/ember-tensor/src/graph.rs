//! What autograd needs from the forward pass: the op enum each result records, the
//! requires-grad flag, and the thread-local `no_grad` switch.
//!
//! Recording is opt-in by data flow: an op records its [`Op`] only when one of its inputs is
//! tracked and grad mode is on, so inference pays one branch per op. The backward rules live
//! in `ember-autograd`, as one exhaustive `match` over [`Op`].

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use crate::tensor::Tensor;

/// Unary functions with their own backward rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryFn {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// 1/√x
    Rsqrt,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tanh x
    Tanh,
    /// logistic sigmoid
    Sigmoid,
    /// erf x
    Erf,
    /// max(x, 0)
    Relu,
    /// GELU, erf form
    Gelu,
    /// GELU, tanh form
    GeluTanh,
    /// x·sigmoid(x)
    Silu,
    /// 1/x
    Recip,
}

/// Binary arithmetic with a backward rule (tensor–tensor or tensor–scalar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryFn {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// a ^ b
    Pow,
}

/// Reductions with a backward rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceFn {
    /// Σ
    Sum,
    /// mean
    Mean,
    /// max (gradient shared among ties)
    Max,
    /// min (gradient shared among ties)
    Min,
}

/// One recorded op: its kind, parameters and the inputs it needs for its backward rule.
/// Dims are already normalized (non-negative, sorted where a list).
#[derive(Debug, Clone)]
pub enum Op {
    /// `f(x)` elementwise.
    Unary(UnaryFn, Tensor),
    /// `a op b` with broadcasting.
    Binary(BinaryFn, Tensor, Tensor),
    /// `x op s` with a scalar.
    Scalar(BinaryFn, Tensor, f64),
    /// clamp to bounds.
    Clamp {
        /// input
        x: Tensor,
        /// lower bound
        min: Option<f64>,
        /// upper bound
        max: Option<f64>,
    },
    /// `maximum` (`max = true`) or `minimum` with broadcasting.
    Extremum {
        /// left
        a: Tensor,
        /// right
        b: Tensor,
        /// maximum or minimum
        max: bool,
    },
    /// `where(cond, a, b)`.
    Where {
        /// Bool condition
        cond: Tensor,
        /// taken where true
        a: Tensor,
        /// taken where false
        b: Tensor,
    },
    /// `x.masked_fill(mask, v)`.
    MaskedFill {
        /// input
        x: Tensor,
        /// Bool mask (broadcasts to x)
        mask: Tensor,
    },
    /// A reduction over dims.
    Reduce {
        /// which one
        kind: ReduceFn,
        /// input
        x: Tensor,
        /// reduced dims (sorted)
        dims: Vec<usize>,
        /// kept dims
        keepdim: bool,
    },
    /// `logsumexp` over dims.
    LogSumExp {
        /// input
        x: Tensor,
        /// reduced dims (sorted)
        dims: Vec<usize>,
        /// kept dims
        keepdim: bool,
    },
    /// log_softmax along a dim; the backward uses the output.
    LogSoftmax {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
    },
    /// layer norm over the last dim.
    LayerNorm {
        /// input
        x: Tensor,
        /// optional (D,) scale
        weight: Option<Tensor>,
        /// optional (D,) shift
        bias: Option<Tensor>,
        /// epsilon
        eps: f64,
    },
    /// RMS norm over the last dim.
    RmsNorm {
        /// input
        x: Tensor,
        /// optional (D,) scale
        weight: Option<Tensor>,
        /// epsilon
        eps: f64,
    },
    /// cross-entropy of (N, C) logits with (N,) class targets.
    CrossEntropy {
        /// logits
        logits: Tensor,
        /// I64 targets
        targets: Tensor,
        /// options
        opts: crate::CrossEntropyOpts,
    },
    /// scaled dot-product attention (with grouped-query heads).
    Attention {
        /// (B, H, Tq, D)
        q: Tensor,
        /// (B, Hkv, Tk, D)
        k: Tensor,
        /// (B, Hkv, Tk, Dv)
        v: Tensor,
        /// additive mask (causality included), broadcastable to (B, H, Tq, Tk)
        mask: Option<Tensor>,
        /// score scale
        scale: f64,
        /// the forward's probabilities (B, H, Tq, Tk), kept for the backward
        probs: Option<Tensor>,
    },
    /// softmax along a dim; the backward uses the output.
    Softmax {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
    },
    /// `torch.matmul`.
    Matmul(Tensor, Tensor),
    /// Any reshape (reshape, squeeze, unsqueeze, flatten).
    Reshape(Tensor),
    /// Broadcast to a larger shape.
    Expand(Tensor),
    /// Axis permutation.
    Permute(Tensor, Vec<usize>),
    /// `x[.., start:end:step]` on one dim.
    Slice {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
        /// first index
        start: usize,
        /// one past the last index
        end: usize,
        /// step
        step: usize,
    },
    /// Concatenation along a dim.
    Cat(Vec<Tensor>, usize),
    /// `index_select` (also the embedding lookup).
    IndexSelect {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
        /// 1-D I64 indices
        idx: Tensor,
    },
    /// `gather` with an index of the input's shape.
    Gather {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
        /// I64 indices
        idx: Tensor,
    },
    /// `scatter_add` with an index of the input's shape.
    ScatterAdd {
        /// input
        x: Tensor,
        /// dim
        dim: usize,
        /// I64 indices
        idx: Tensor,
        /// added values
        src: Tensor,
    },
    /// dtype conversion.
    ToDtype(Tensor),
    /// device move.
    ToDevice(Tensor),
    /// An op with no derivative (argmax, comparisons, bernoulli, ...): a gradient that reaches
    /// it is an error.
    NotDifferentiable {
        /// the op's name
        name: &'static str,
        /// its (tracked) input
        x: Tensor,
    },
}

impl Op {
    /// The op's kind (one per differentiable function), for the gradcheck registry.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Unary(f, _) => match f {
                UnaryFn::Neg => OpKind::Neg,
                UnaryFn::Abs => OpKind::Abs,
                UnaryFn::Exp => OpKind::Exp,
                UnaryFn::Log => OpKind::Log,
                UnaryFn::Sqrt => OpKind::Sqrt,
                UnaryFn::Rsqrt => OpKind::Rsqrt,
                UnaryFn::Sin => OpKind::Sin,
                UnaryFn::Cos => OpKind::Cos,
                UnaryFn::Tanh => OpKind::Tanh,
                UnaryFn::Sigmoid => OpKind::Sigmoid,
                UnaryFn::Erf => OpKind::Erf,
                UnaryFn::Relu => OpKind::Relu,
                UnaryFn::Gelu => OpKind::Gelu,
                UnaryFn::GeluTanh => OpKind::GeluTanh,
                UnaryFn::Silu => OpKind::Silu,
                UnaryFn::Recip => OpKind::Recip,
            },
            Op::Binary(f, ..) => match f {
                BinaryFn::Add => OpKind::Add,
                BinaryFn::Sub => OpKind::Sub,
                BinaryFn::Mul => OpKind::Mul,
                BinaryFn::Div => OpKind::Div,
                BinaryFn::Pow => OpKind::Pow,
            },
            Op::Scalar(f, ..) => match f {
                BinaryFn::Add => OpKind::AddScalar,
                BinaryFn::Sub => OpKind::SubScalar,
                BinaryFn::Mul => OpKind::MulScalar,
                BinaryFn::Div => OpKind::DivScalar,
                BinaryFn::Pow => OpKind::PowScalar,
            },
            Op::Clamp { .. } => OpKind::Clamp,
            Op::Extremum { max: true, .. } => OpKind::Maximum,
            Op::Extremum { max: false, .. } => OpKind::Minimum,
            Op::Where { .. } => OpKind::Where,
            Op::MaskedFill { .. } => OpKind::MaskedFill,
            Op::Reduce { kind, .. } => match kind {
                ReduceFn::Sum => OpKind::Sum,
                ReduceFn::Mean => OpKind::Mean,
                ReduceFn::Max => OpKind::Max,
                ReduceFn::Min => OpKind::Min,
            },
            Op::LogSumExp { .. } => OpKind::LogSumExp,
            Op::Softmax { .. } => OpKind::Softmax,
            Op::LogSoftmax { .. } => OpKind::LogSoftmax,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::RmsNorm { .. } => OpKind::RmsNorm,
            Op::CrossEntropy { .. } => OpKind::CrossEntropy,
            Op::Attention { .. } => OpKind::Attention,
            Op::Matmul(..) => OpKind::Matmul,
            Op::Reshape(_) => OpKind::Reshape,
            Op::Expand(_) => OpKind::Expand,
            Op::Permute(..) => OpKind::Permute,
            Op::Slice { .. } => OpKind::Slice,
            Op::Cat(..) => OpKind::Cat,
            Op::IndexSelect { .. } => OpKind::IndexSelect,
            Op::Gather { .. } => OpKind::Gather,
            Op::ScatterAdd { .. } => OpKind::ScatterAdd,
            Op::ToDtype(_) => OpKind::ToDtype,
            Op::ToDevice(_) => OpKind::ToDevice,
            Op::NotDifferentiable { .. } => OpKind::NotDifferentiable,
        }
    }

    /// The op's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::NotDifferentiable { name, .. } => name,
            op => op.kind().name(),
        }
    }

    /// The tensor inputs the op records (in the order its backward returns gradients).
    pub fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(_, x)
            | Op::Scalar(_, x, _)
            | Op::Clamp { x, .. }
            | Op::MaskedFill { x, .. }
            | Op::Reduce { x, .. }
            | Op::LogSumExp { x, .. }
            | Op::Softmax { x, .. }
            | Op::LogSoftmax { x, .. }
            | Op::CrossEntropy { logits: x, .. }
            | Op::Reshape(x)
            | Op::Expand(x)
            | Op::Permute(x, _)
            | Op::Slice { x, .. }
            | Op::IndexSelect { x, .. }
            | Op::Gather { x, .. }
            | Op::ToDtype(x)
            | Op::ToDevice(x)
            | Op::NotDifferentiable { x, .. } => vec![x],
            Op::Binary(_, a, b) | Op::Extremum { a, b, .. } | Op::Matmul(a, b) => vec![a, b],
            Op::Where { a, b, .. } => vec![a, b],
            Op::ScatterAdd { x, src, .. } => vec![x, src],
            Op::Cat(xs, _) => xs.iter().collect(),
            Op::LayerNorm {
                x, weight, bias, ..
            } => std::iter::once(x).chain(weight).chain(bias).collect(),
            Op::RmsNorm { x, weight, .. } => std::iter::once(x).chain(weight).collect(),
            Op::Attention { q, k, v, .. } => vec![q, k, v],
        }
    }
}

macro_rules! op_kinds {
    ($($kind:ident => $name:literal),* $(,)?) => {
        /// One kind per differentiable function (and one for the non-differentiable ops).
        /// [`OpKind::ALL`] lists them, so tests can require a gradient check for each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum OpKind { $($kind),* }

        impl OpKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind),*];

            /// The PyTorch-style name.
            pub fn name(self) -> &'static str {
                match self { $(OpKind::$kind => $name),* }
            }
        }
    };
}

op_kinds! {
    Neg => "neg", Abs => "abs", Exp => "exp", Log => "log", Sqrt => "sqrt", Rsqrt => "rsqrt",
    Sin => "sin", Cos => "cos", Tanh => "tanh", Sigmoid => "sigmoid", Erf => "erf",
    Relu => "relu", Gelu => "gelu", GeluTanh => "gelu_tanh", Silu => "silu", Recip => "recip",
    Add => "add", Sub => "sub", Mul => "mul", Div => "div", Pow => "pow",
    AddScalar => "add_scalar", SubScalar => "sub_scalar", MulScalar => "mul_scalar",
    DivScalar => "div_scalar", PowScalar => "powf", Clamp => "clamp", Maximum => "maximum",
    Minimum => "minimum", Where => "where", MaskedFill => "masked_fill", Sum => "sum",
    Mean => "mean", Max => "max", Min => "min", LogSumExp => "logsumexp",
    Softmax => "softmax", LogSoftmax => "log_softmax", LayerNorm => "layer_norm",
    RmsNorm => "rms_norm", CrossEntropy => "cross_entropy",
    Attention => "scaled_dot_product_attention", Matmul => "matmul", Reshape => "reshape", Expand => "expand",
    Permute => "permute", Slice => "slice", Cat => "cat", IndexSelect => "index_select",
    Gather => "gather", ScatterAdd => "scatter_add", ToDtype => "to_dtype",
    ToDevice => "to_device", NotDifferentiable => "not_differentiable",
}

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
/// # use ember_tensor::{Tensor, Device, DType, no_grad};
/// let w = Tensor::ones(&[2], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// {
///     let _guard = no_grad();
///     assert!(!w.mul_scalar(2.0)?.is_tracked());
/// }
/// assert!(w.mul_scalar(2.0)?.is_tracked());
/// # Ok::<(), ember_tensor::Error>(())
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

    /// The recorded op of a tracked op result, for the backward pass. `None` for leaves,
    /// untracked tensors and consumed graphs (see [`Tensor::is_consumed`]).
    pub fn grad_op(&self) -> Option<Op> {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => None,
        }
    }

    /// Takes the recorded op out of the graph (the backward pass frees the graph this way).
    pub fn take_grad_op(&self) -> Option<Op> {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).take(),
            _ => None,
        }
    }

    /// True for an op result whose recorded op a backward pass already consumed.
    pub fn is_consumed(&self) -> bool {
        match self.track() {
            Track::Op(cell) => cell.lock().unwrap_or_else(|e| e.into_inner()).is_none(),
            _ => false,
        }
    }
}
