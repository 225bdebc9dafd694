//! The op each tracked result records: its kind, parameters and the inputs its backward rule
//! needs. Dims are already normalized (non-negative, sorted where a list). The rules are in
//! `rules.rs`, one exhaustive `match` over [`Op`].

use crate::CrossEntropyOpts;
use crate::kernels::attention::Saved;
use crate::{BinaryFn, ReduceFn, Tensor, UnaryFn};

/// One recorded op: its kind, parameters and the inputs it needs for its backward rule.
/// Dims are already normalized (non-negative, sorted where a list).
#[derive(Debug, Clone)]
pub(crate) enum Op {
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
        opts: CrossEntropyOpts,
    },
    /// cross-entropy of `x wᵀ` (a mean or sum), its gradients taken in the forward.
    LinearCrossEntropy {
        /// (N, K), a graph handle
        x: Tensor,
        /// (V, K), a graph handle
        weight: Tensor,
        /// the gradients of `x` and `weight` for an output gradient of 1
        grads: crate::kernels::loss::Grads,
    },
    /// SwiGLU's product `silu(gate) · up`.
    SiluMul(Tensor, Tensor),
    /// scaled dot-product attention (with grouped-query heads).
    Attention {
        /// (B, H, Tq, D)
        q: Tensor,
        /// (B, Hkv, Tk, D)
        k: Tensor,
        /// (B, Hkv, Tk, Dv)
        v: Tensor,
        /// the caller's additive mask, broadcastable to (B, H, Tq, Tk)
        mask: Option<Tensor>,
        /// causal masking (top-left aligned)
        causal: bool,
        /// score scale
        scale: f64,
        /// what the forward kept for the backward (probabilities or log-sum-exp)
        saved: Option<Saved>,
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
    /// Rotary position embedding; the tables are constants.
    Rotary {
        /// input (.., T, D)
        x: Tensor,
        /// cos table (T, D)
        cos: Tensor,
        /// sin table (T, D)
        sin: Tensor,
    },
    /// `x wᵀ + b` with a quantized weight: gradients for `x` and `bias`, none for `w`.
    QLinear {
        /// input (.., in)
        x: Tensor,
        /// weight (out, in)
        w: crate::base::quant::QTensor,
        /// bias (out,)
        bias: Option<Tensor>,
    },
    /// reversal along the dims (sorted).
    Flip(Tensor, Vec<usize>),
    /// running sums along a dim.
    Cumsum(Tensor, usize),
    /// running products along a dim.
    Cumprod(Tensor, usize),
    /// dtype conversion.
    ToDtype(Tensor),
    /// device move.
    ToDevice(Tensor),
    /// A checkpointed function: its output only, recomputed in the backward.
    Checkpoint(super::Checkpointed),
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
    /// The op's kind, for messages, [`Tensor::grad_fn`] and the gradcheck registry.
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Unary(f, _) => OpKind::Unary(*f),
            Op::Binary(f, ..) => OpKind::Binary(*f),
            Op::Scalar(f, ..) => OpKind::Scalar(*f),
            Op::Reduce { kind, .. } => OpKind::Reduce(*kind),
            Op::Clamp { .. } => OpKind::Clamp,
            Op::Extremum { max: true, .. } => OpKind::Maximum,
            Op::Extremum { max: false, .. } => OpKind::Minimum,
            Op::Where { .. } => OpKind::Where,
            Op::MaskedFill { .. } => OpKind::MaskedFill,
            Op::LogSumExp { .. } => OpKind::LogSumExp,
            Op::Softmax { .. } => OpKind::Softmax,
            Op::LogSoftmax { .. } => OpKind::LogSoftmax,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::RmsNorm { .. } => OpKind::RmsNorm,
            Op::CrossEntropy { .. } => OpKind::CrossEntropy,
            Op::LinearCrossEntropy { .. } => OpKind::LinearCrossEntropy,
            Op::SiluMul(..) => OpKind::SiluMul,
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
            Op::QLinear { .. } => OpKind::QLinear,
            Op::Rotary { .. } => OpKind::Rotary,
            Op::Flip(..) => OpKind::Flip,
            Op::Cumsum(..) => OpKind::Cumsum,
            Op::Cumprod(..) => OpKind::Cumprod,
            Op::ToDtype(_) => OpKind::ToDtype,
            Op::ToDevice(_) => OpKind::ToDevice,
            Op::Checkpoint(_) => OpKind::Checkpoint,
            Op::NotDifferentiable { .. } => OpKind::NotDifferentiable,
        }
    }

    /// The op's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::NotDifferentiable { name, .. } => name,
            op => op.kind().name(),
        }
    }

    /// True for ops whose output views its input's buffer (reshape, permute, expand, unit-step
    /// slices): a view of a parameter is the parameter's memory.
    pub(crate) fn is_view(&self) -> bool {
        matches!(
            self,
            Op::Reshape(_) | Op::Permute(..) | Op::Expand(_) | Op::Slice { step: 1, .. }
        )
    }

    /// Tensors the op keeps for its backward besides its inputs (attention's probabilities or
    /// log-sum-exp, gradients taken in the forward).
    pub(crate) fn kept(&self) -> Vec<&Tensor> {
        use crate::kernels::attention::Saved;
        match self {
            Op::Attention {
                saved: Some(Saved::Probs(t) | Saved::Lse(t)),
                ..
            } => vec![t],
            Op::LinearCrossEntropy { grads, .. } => grads.x.iter().chain(&grads.w).collect(),
            _ => vec![],
        }
    }

    /// The tensor inputs the op records (in the order its backward returns gradients).
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
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
            | Op::Flip(x, _)
            | Op::Cumsum(x, _)
            | Op::Cumprod(x, _)
            | Op::Rotary { x, .. }
            | Op::ToDevice(x)
            | Op::NotDifferentiable { x, .. } => vec![x],
            Op::Binary(_, a, b) | Op::Extremum { a, b, .. } | Op::Matmul(a, b) => vec![a, b],
            Op::SiluMul(a, b) => vec![a, b],
            Op::Where { a, b, .. } => vec![a, b],
            Op::ScatterAdd { x, src, .. } => vec![x, src],
            Op::Cat(xs, _) => xs.iter().collect(),
            Op::LayerNorm {
                x, weight, bias, ..
            } => std::iter::once(x).chain(weight).chain(bias).collect(),
            Op::RmsNorm { x, weight, .. } => std::iter::once(x).chain(weight).collect(),
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::LinearCrossEntropy { x, weight, .. } => vec![x, weight],
            Op::QLinear { x, bias, .. } => std::iter::once(x).chain(bias).collect(),
            Op::Checkpoint(c) => c.inputs.iter().collect(),
        }
    }
}

macro_rules! op_kinds {
    ($($kind:ident => $name:literal),* $(,)?) => {
        /// The kind of a recorded op: one per differentiable function (the elementwise
        /// families and reductions by their table's enum), and one for the ops without a
        /// derivative. [`OpKind::all`] lists them, so tests can require a gradient check for
        /// each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum OpKind {
            /// A unary function (`base/tables/unary.rs`).
            Unary(UnaryFn),
            /// Tensor–tensor arithmetic (`base/tables/binary.rs`).
            Binary(BinaryFn),
            /// Tensor–scalar arithmetic (`base/tables/binary.rs`).
            Scalar(BinaryFn),
            /// A reduction (`base/tables/reduce.rs`).
            Reduce(ReduceFn),
            $($kind),*
        }

        impl OpKind {
            /// Every kind: the table families expanded, then the others.
            pub fn all() -> Vec<OpKind> {
                let mut all: Vec<OpKind> = UnaryFn::ALL.iter().map(|&f| OpKind::Unary(f)).collect();
                all.extend(BinaryFn::ALL.iter().map(|&f| OpKind::Binary(f)));
                all.extend(BinaryFn::ALL.iter().map(|&f| OpKind::Scalar(f)));
                all.extend(ReduceFn::ALL.iter().map(|&f| OpKind::Reduce(f)));
                all.extend([$(OpKind::$kind),*]);
                all
            }

            /// The PyTorch-style name.
            pub fn name(self) -> &'static str {
                match self {
                    OpKind::Unary(f) => f.name(),
                    OpKind::Binary(f) => f.name(),
                    OpKind::Scalar(f) => f.scalar_name(),
                    OpKind::Reduce(f) => f.name(),
                    $(OpKind::$kind => $name),*
                }
            }
        }
    };
}

op_kinds! {
    Clamp => "clamp", Maximum => "maximum", Minimum => "minimum", Where => "where",
    MaskedFill => "masked_fill", LogSumExp => "logsumexp", Softmax => "softmax",
    LogSoftmax => "log_softmax", LayerNorm => "layer_norm", RmsNorm => "rms_norm",
    CrossEntropy => "cross_entropy", LinearCrossEntropy => "linear_cross_entropy",
    SiluMul => "silu_mul",
    Attention => "scaled_dot_product_attention",
    Matmul => "matmul", Reshape => "reshape", Expand => "expand", Permute => "permute",
    Slice => "slice", Cat => "cat", IndexSelect => "index_select", Gather => "gather",
    ScatterAdd => "scatter_add", QLinear => "linear_q", Rotary => "rotary", Flip => "flip", Cumsum => "cumsum",
    Cumprod => "cumprod",
    ToDtype => "to_dtype",
    ToDevice => "to_device", Checkpoint => "checkpoint", NotDifferentiable => "not_differentiable",
}
