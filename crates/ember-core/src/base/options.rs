//! The options of the fused ops, shared by the op that validates them, the kernel that runs
//! them and the rule that differentiates them.

use crate::Tensor;

/// How `cross_entropy` reduces the per-row losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Mean over the rows whose target is not ignored (PyTorch's default).
    #[default]
    Mean,
    /// Sum over rows.
    Sum,
    /// One loss per row (ignored rows are 0).
    None,
}

/// Options of [`Tensor::cross_entropy`], PyTorch's defaults by `Default`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropyOpts {
    /// Targets equal to this contribute nothing (default -100, as PyTorch and HF).
    pub ignore_index: i64,
    /// Mean, sum or none.
    pub reduction: Reduction,
    /// Label smoothing ε in `[0, 1]`.
    pub label_smoothing: f64,
}

impl Default for CrossEntropyOpts {
    fn default() -> Self {
        CrossEntropyOpts {
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

/// Options of [`Tensor::scaled_dot_product_attention`].
#[derive(Debug, Clone, Default)]
pub struct AttentionOpts {
    /// An additive float mask, or a Bool mask (true = may attend), broadcastable to
    /// `(B, H, Tq, Tk)`.
    pub mask: Option<Tensor>,
    /// Causal masking, aligned top-left as PyTorch's `is_causal` (query i sees keys `j <= i`).
    pub causal: bool,
    /// Score scale; `1/√D` when `None`.
    pub scale: Option<f64>,
    /// Dropout on the attention probabilities, as PyTorch's `dropout_p` (applied whenever
    /// it is above 0: pass 0 in eval mode). Runs the composed definition, op by op.
    pub dropout_p: f64,
}

/// The hyper-parameters of one Adam(W) update, bias corrections of the step included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// `(β1, β2)`.
    pub betas: (f64, f64),
    /// Denominator epsilon, added after the bias-corrected square root (as torch).
    pub eps: f64,
    /// Weight decay: decoupled (`w ← w(1 - lr·wd)`) when `decoupled`, else added to the
    /// gradient.
    pub weight_decay: f64,
    /// AdamW (true) or Adam with L2 (false).
    pub decoupled: bool,
    /// `1 - β1^t`.
    pub bias_correction1: f64,
    /// `1 - β2^t`.
    pub bias_correction2: f64,
}
