//! Fused ops: each is one recorded op whose forward and backward are one kernel entry
//! (`kernels::*`), so training never falls back to a long chain of small ops, and a gradient
//! never goes missing. The forward runs with recording off, then the op is recorded once.

use crate::{DType, Error, Result};

use crate::autocast::{autocast_dtype, autocast_off, lower};
use crate::autograd::{Op, is_grad_enabled, no_grad};
use crate::kernels;
use crate::shape::norm_dim;
use crate::tensor::Tensor;

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

impl Tensor {
    /// Runs `forward` with recording off and records `op` on its result.
    fn fused(
        &self,
        inputs: &[&Tensor],
        forward: impl FnOnce() -> Result<Tensor>,
        op: impl FnOnce() -> Op,
    ) -> Result<Tensor> {
        let y = {
            let _guard = no_grad();
            forward()?
        };
        let y = y.detach();
        Ok(y.record(inputs, op))
    }

    /// `log(softmax(x))` along `dim`, as one op with its own backward.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        const OP: &str = "log_softmax";
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(DType::F32)?
        };
        let d = norm_dim(OP, dim, x.rank().max(1))?;
        x.fused(
            &[&x],
            || kernels::softmax::log_softmax(&x, d),
            || Op::LogSoftmax {
                x: x.clone(),
                dim: d,
            },
        )
    }

    /// Layer normalization over the last dim, as `torch.nn.functional.layer_norm(x, (D,),
    /// weight, bias, eps)`. `weight` and `bias` are `(D,)` and optional. The result has
    /// `x`'s dtype (a bf16 `x` with f32 parameters gives bf16, as PyTorch on the CPU).
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        self.check_norm_params(OP, &[weight, bias])?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        self.fused(
            &inputs,
            || kernels::norm::layer_norm(self, weight, bias, eps)?.to_dtype(self.dtype()),
            || Op::LayerNorm {
                x: self.clone(),
                weight: weight.cloned(),
                bias: bias.cloned(),
                eps,
            },
        )
    }

    /// RMS normalization over the last dim: `x / sqrt(mean(x²) + eps) · weight`, as
    /// `torch.nn.functional.rms_norm` and Llama's `LlamaRMSNorm`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        self.check_norm_params(OP, &[weight])?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        self.fused(
            &inputs,
            || kernels::norm::rms_norm(self, weight, eps)?.to_dtype(self.dtype()),
            || Op::RmsNorm {
                x: self.clone(),
                weight: weight.cloned(),
                eps,
            },
        )
    }

    /// Rotary position embedding as Llama's `apply_rotary_pos_emb`: `x·cos + rotate_half(x)·sin`
    /// with `rotate_half(x) = cat(-x₂, x₁)` of the last dim's halves. `x` is `(.., T, D)`
    /// (`D` even), `cos` and `sin` `(T, D)` tables (constants: they get no gradient).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 4], Device::Cpu)?; // (T, D)
    /// let cos = Tensor::zeros(&[1, 4], DType::F32, Device::Cpu)?;
    /// let sin = Tensor::ones(&[1, 4], DType::F32, Device::Cpu)?;
    /// assert_eq!(x.rotary(&cos, &sin)?.to_vec::<f32>()?, vec![-3.0, -4.0, 1.0, 2.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn rotary(&self, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        const OP: &str = "rotary";
        let r = self.rank();
        let ok = r >= 2 && self.dims()[r - 1].is_multiple_of(2);
        let table = [
            self.dims().get(r.wrapping_sub(2)).copied().unwrap_or(0),
            self.dims().last().copied().unwrap_or(0),
        ];
        if !ok || cos.dims() != table || sin.dims() != table {
            return Err(Error::shape(
                OP,
                &[self.dims(), cos.dims(), sin.dims()],
                format!(
                    "x must be (.., T, D) with D even and cos, sin (T, D); got {:?}, {:?}, {:?}",
                    self.dims(),
                    cos.dims(),
                    sin.dims()
                ),
            ));
        }
        if !self.dtype().is_float() {
            return Err(Error::dtype(OP, &[self.dtype()], "needs a float input"));
        }
        self.same_device(OP, cos)?;
        self.same_device(OP, sin)?;
        let cos = cos.detach().to_dtype(self.dtype())?;
        let sin = sin.detach().to_dtype(self.dtype())?;
        self.fused(
            &[self],
            || kernels::rotary::rotary(self, &cos, &sin),
            // The rule rotates the gradient back with the tables: `x`'s data is not read.
            || Op::Rotary {
                x: self.graph_handle(),
                cos: cos.clone(),
                sin: sin.clone(),
            },
        )
    }

    fn check_norm_params(&self, op: &'static str, params: &[Option<&Tensor>]) -> Result<usize> {
        if !self.dtype().is_float() || self.rank() == 0 {
            return Err(Error::dtype(
                op,
                &[self.dtype()],
                format!(
                    "needs a float input of rank >= 1, got {} of shape {:?}",
                    self.dtype(),
                    self.dims()
                ),
            ));
        }
        let d = self.dims()[self.rank() - 1];
        for p in params.iter().flatten() {
            self.same_device(op, p)?;
            if p.dims() != [d] {
                return Err(Error::shape(
                    op,
                    &[p.dims(), self.dims()],
                    format!(
                        "parameter of shape {:?} does not match the last dim of input {:?}",
                        p.dims(),
                        self.dims()
                    ),
                ));
            }
        }
        Ok(d)
    }

    /// Cross-entropy between logits `(N, C)` and I64 class targets `(N,)`, as
    /// `torch.nn.functional.cross_entropy` (ignore_index, reduction, label smoothing).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, CrossEntropyOpts};
    /// let logits = Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 2.0], &[2, 2], Device::Cpu)?;
    /// let targets = Tensor::from_vec(vec![0i64, -100], &[2], Device::Cpu)?;
    /// let loss = logits.cross_entropy(&targets, CrossEntropyOpts::default())?;
    /// assert!((loss.to_scalar::<f32>()? - 0.126928).abs() < 1e-5); // only row 0 counts
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn cross_entropy(&self, targets: &Tensor, opts: CrossEntropyOpts) -> Result<Tensor> {
        // Under autocast the loss runs in f32 (PyTorch's f32 list), read from the logits as
        // they are: the kernel entry widens them where it needs to.
        let in_f32 = autocast_dtype().is_some() && matches!(self.dtype(), DType::BF16 | DType::F16);
        let _off = autocast_off();
        const OP: &str = "cross_entropy";
        self.same_device(OP, targets)?;
        if self.rank() != 2 || !self.dtype().is_float() {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "logits must be float (N, C), got {} {:?}",
                    self.dtype(),
                    self.dims()
                ),
            ));
        }
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let t = checked_targets(OP, targets, n, c, &opts)?;
        self.fused(
            &[self],
            || kernels::cross_entropy::cross_entropy(self, targets, &t, &opts, in_f32),
            || Op::CrossEntropy {
                logits: self.clone(),
                targets: targets.clone(),
                opts,
            },
        )
    }

    /// `cross_entropy(self wᵀ, targets)` for inputs `self (N, K)` and a weight `(V, K)` (a
    /// linear layer's, or a tied embedding table): `F.cross_entropy(F.linear(x, w), t)` as one
    /// op that never holds the `(N, V)` logits. They are computed a block of rows at a time,
    /// and with each block the gradients of `self` and `weight` are taken, so the backward
    /// only scales them (a language model's head and loss in a fraction of the memory, and no
    /// recomputation). A mean or sum reduction; [`Reduction::None`] runs the two ops. Under
    /// autocast the product runs in the low dtype and the loss in f32, as the two ops would.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType, CrossEntropyOpts};
    /// let x = Tensor::ones(&[2, 3], DType::F32, Device::Cpu)?;
    /// let w = Tensor::eye(3, DType::F32, Device::Cpu)?.requires_grad(true)?; // (V, K)
    /// let t = Tensor::from_vec(vec![0i64, 2], &[2], Device::Cpu)?;
    /// let fused = x.linear_cross_entropy(&w, &t, CrossEntropyOpts::default())?;
    /// let two_ops = x.linear(&w, None)?.cross_entropy(&t, CrossEntropyOpts::default())?;
    /// assert_eq!(fused.to_scalar::<f32>()?, two_ops.to_scalar::<f32>()?);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn linear_cross_entropy(
        &self,
        weight: &Tensor,
        targets: &Tensor,
        opts: CrossEntropyOpts,
    ) -> Result<Tensor> {
        const OP: &str = "linear_cross_entropy";
        if opts.reduction == Reduction::None {
            return self.linear(weight, None)?.cross_entropy(targets, opts);
        }
        let (x, w) = (lower(self)?, lower(weight)?);
        let in_f32 = autocast_dtype().is_some() && matches!(x.dtype(), DType::BF16 | DType::F16);
        let _off = autocast_off();
        x.same_device(OP, &w)?;
        x.same_device(OP, targets)?;
        let float2 = |t: &Tensor| t.rank() == 2 && t.dtype().is_float();
        if !float2(&x) || !float2(&w) || x.dtype() != w.dtype() || x.dims()[1] != w.dims()[1] {
            return Err(Error::shape(
                OP,
                &[x.dims(), w.dims()],
                format!(
                    "inputs must be float (N, K) and the weight (V, K) of the same dtype, got {} \
                     {:?} and {} {:?}",
                    x.dtype(),
                    x.dims(),
                    w.dtype(),
                    w.dims()
                ),
            ));
        }
        let (n, v) = (x.dims()[0], w.dims()[0]);
        let t = checked_targets(OP, targets, n, v, &opts)?;
        let want = [x.is_tracked(), w.is_tracked()].map(|w| w && is_grad_enabled());
        let (loss, grads) = {
            let _guard = no_grad();
            let rows = kernels::linear_cross_entropy::block_rows(v);
            kernels::linear_cross_entropy::linear_cross_entropy(
                (&x, &w),
                (targets, &t),
                &opts,
                in_f32,
                want,
                rows,
            )?
        };
        // The rule reads only the gradients taken here: the inputs are kept as graph handles.
        Ok(loss.detach().record(&[&x, &w], || Op::LinearCrossEntropy {
            x: x.graph_handle(),
            weight: w.graph_handle(),
            grads,
        }))
    }

    /// SwiGLU's product `silu(self) · up` (Llama's MLP: `F.silu(gate) * up`) for tensors of one
    /// shape and float dtype, as one op: it keeps `self` and `up` only and recomputes the
    /// SiLU in its backward, where the two ops would also keep `silu(self)`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let gate = Tensor::from_vec(vec![0.0f32, 2.0], &[2], Device::Cpu)?;
    /// let up = Tensor::from_vec(vec![3.0f32, 0.5], &[2], Device::Cpu)?;
    /// let y = gate.silu_mul(&up)?.to_vec::<f32>()?;
    /// assert!(y[0] == 0.0 && (y[1] - 0.880797).abs() < 1e-5); // 2·σ(2)·0.5
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn silu_mul(&self, up: &Tensor) -> Result<Tensor> {
        const OP: &str = "silu_mul";
        self.same_device(OP, up)?;
        if self.dims() != up.dims() || self.dtype() != up.dtype() || !self.dtype().is_float() {
            return Err(Error::shape(
                OP,
                &[self.dims(), up.dims()],
                format!(
                    "gate and up must be float tensors of one shape and dtype, got {} {:?} and \
                     {} {:?}",
                    self.dtype(),
                    self.dims(),
                    up.dtype(),
                    up.dims()
                ),
            ));
        }
        self.fused(
            &[self, up],
            || kernels::activation::silu_mul(self, up),
            || Op::SiluMul(self.clone(), up.clone()),
        )
    }

    /// Attention `softmax(q kᵀ · scale + mask) v` over `(B, H, T, D)` tensors, as
    /// `torch.nn.functional.scaled_dot_product_attention`. `k` and `v` may have fewer heads
    /// than `q` (grouped-query attention: H must be a multiple of their head count).
    pub fn scaled_dot_product_attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOpts,
    ) -> Result<Tensor> {
        if autocast_dtype().is_some() {
            let (q, k, v) = (lower(self)?, lower(k)?, lower(v)?);
            let mask = opts.mask.as_ref().map(lower).transpose()?;
            let opts = AttentionOpts {
                mask,
                ..opts.clone()
            };
            let _off = autocast_off();
            return q.scaled_dot_product_attention(&k, &v, &opts);
        }
        const OP: &str = "scaled_dot_product_attention";
        let q = self;
        q.same_device(OP, k)?;
        q.same_device(OP, v)?;
        let ok = q.rank() == 4
            && k.rank() == 4
            && v.rank() == 4
            && q.dims()[0] == k.dims()[0]
            && k.dims()[0] == v.dims()[0]
            && k.dims()[1] == v.dims()[1]
            && k.dims()[2] == v.dims()[2]
            && q.dims()[3] == k.dims()[3]
            && k.dims()[1] > 0
            && q.dims()[1].is_multiple_of(k.dims()[1]);
        if !ok {
            return Err(Error::shape(
                OP,
                &[q.dims(), k.dims(), v.dims()],
                format!(
                    "expected q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) with H a \
                     multiple of Hkv; got {:?}, {:?}, {:?}",
                    q.dims(),
                    k.dims(),
                    v.dims()
                ),
            ));
        }
        if !(0.0..1.0).contains(&opts.dropout_p) {
            return Err(Error::data(
                OP,
                format!("dropout_p = {} is outside [0, 1)", opts.dropout_p),
            ));
        }
        let mask = user_mask(q, k, opts)?;
        let scale = opts.scale.unwrap_or(1.0 / (q.dims()[3] as f64).sqrt());
        let args = kernels::attention::Args {
            q,
            k,
            v,
            mask: mask.as_ref(),
            causal: opts.causal,
            scale,
        };
        if opts.dropout_p > 0.0 {
            return kernels::attention::attention_dropped(&args, opts.dropout_p);
        }
        // What the backward needs (the probabilities, or the tiled kernel's log-sum-exp).
        let saved = std::cell::RefCell::new(None);
        q.fused(
            &[q, k, v],
            || {
                let (y, s) = kernels::attention::attention(&args)?;
                *saved.borrow_mut() = s;
                Ok(y)
            },
            || Op::Attention {
                q: q.clone(),
                k: k.clone(),
                v: v.clone(),
                mask: mask.clone(),
                causal: opts.causal,
                scale,
                saved: saved.borrow_mut().take(),
            },
        )
    }
}

/// The caller's mask as an additive float mask of q's dtype (a Bool keep-mask becomes 0 and
/// -inf), checked to broadcast to `(B, H, Tq, Tk)`; `None` without one.
fn user_mask(q: &Tensor, k: &Tensor, opts: &AttentionOpts) -> Result<Option<Tensor>> {
    const OP: &str = "scaled_dot_product_attention";
    let Some(m) = &opts.mask else {
        return Ok(None);
    };
    let full = [q.dims()[0], q.dims()[1], q.dims()[2], k.dims()[2]];
    q.same_device(OP, m)?;
    if m.is_tracked() && is_grad_enabled() {
        // Ember computes no gradient for masks: refuse rather than drop it silently.
        return Err(Error::NotDifferentiable {
            op: "scaled_dot_product_attention (with respect to its mask)",
        });
    }
    if !crate::shape::broadcasts_to(m.dims(), &full) {
        return Err(Error::shape(
            OP,
            &[m.dims(), &full],
            format!(
                "mask of shape {:?} does not broadcast to {full:?}",
                m.dims()
            ),
        ));
    }
    Ok(Some(if m.dtype() == DType::Bool {
        let zeros = Tensor::zeros(m.dims(), q.dtype(), q.device())?;
        zeros.masked_fill(&m.logical_not()?, f64::NEG_INFINITY)?
    } else {
        m.detach().to_dtype(q.dtype())?
    }))
}

/// The targets of a cross-entropy over `(n, c)` logits, checked: I64 of shape `(n,)`, each a
/// class below `c` or the ignored index; label smoothing in `[0, 1]`.
fn checked_targets(
    op: &'static str,
    targets: &Tensor,
    n: usize,
    c: usize,
    opts: &CrossEntropyOpts,
) -> Result<Vec<i64>> {
    if targets.dtype() != DType::I64 || targets.dims() != [n] {
        return Err(Error::shape(
            op,
            &[targets.dims()],
            format!(
                "targets must be i64 of shape [{n}], got {} {:?}",
                targets.dtype(),
                targets.dims()
            ),
        ));
    }
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(Error::data(
            op,
            format!("label_smoothing {} is outside [0, 1]", opts.label_smoothing),
        ));
    }
    let t = targets.to_vec::<i64>()?;
    if let Some(bad) = t
        .iter()
        .find(|&&v| v != opts.ignore_index && (v < 0 || v as usize >= c))
    {
        return Err(Error::index(
            op,
            *bad,
            c,
            format!("target {bad} is out of range for {c} classes"),
        ));
    }
    Ok(t)
}
