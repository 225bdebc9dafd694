//! Fused ops: each is one recorded op with its own analytic backward (in ember-autograd), so
//! training never falls back to a long chain of small ops, and a gradient never goes missing.
//! The forward is computed from primitives with recording off, then recorded once.

use ember_backend::{DType, Error, Result};

use crate::graph::{Op, is_grad_enabled, no_grad};
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
            || {
                let lse = x.logsumexp(&[d as isize], true)?;
                x.sub(&lse)
            },
            || Op::LogSoftmax {
                x: x.clone(),
                dim: d,
            },
        )
    }

    /// Layer normalization over the last dim, as `torch.nn.functional.layer_norm(x, (D,),
    /// weight, bias, eps)`. `weight` and `bias` are `(D,)` and optional.
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        let d = self.check_norm_params(OP, &[weight, bias])?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        self.fused(
            &inputs,
            || {
                let (w, b) = (weight.map(Tensor::prim), bias.map(Tensor::prim));
                if let Some(y) =
                    ember_backend::cpu::layer_norm(&self.prim(), w.as_ref(), b.as_ref(), eps)
                {
                    return Ok(self.wrap(y, self.shape()));
                }
                let mean = self.mean(&[-1], true)?; // (.., 1)
                let centered = self.sub(&mean)?;
                let var = centered.square()?.mean(&[-1], true)?;
                let mut y = centered.mul(&var.add_scalar(eps)?.rsqrt()?)?;
                if let Some(w) = weight {
                    y = y.mul(w)?;
                }
                if let Some(b) = bias {
                    y = y.add(b)?;
                }
                let _ = d;
                Ok(y)
            },
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
            || {
                let r = self.square()?.mean(&[-1], true)?.add_scalar(eps)?.rsqrt()?;
                let y = self.mul(&r)?;
                match weight {
                    Some(w) => y.mul(w),
                    None => Ok(y),
                }
            },
            || Op::RmsNorm {
                x: self.clone(),
                weight: weight.cloned(),
                eps,
            },
        )
    }

    fn check_norm_params(&self, op: &'static str, params: &[Option<&Tensor>]) -> Result<usize> {
        if !self.dtype().is_float() || self.rank() == 0 {
            return Err(Error::dtype(
                op,
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
    /// # use ember_tensor::{Tensor, Device, CrossEntropyOpts};
    /// let logits = Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 2.0], &[2, 2], Device::Cpu)?;
    /// let targets = Tensor::from_vec(vec![0i64, -100], &[2], Device::Cpu)?;
    /// let loss = logits.cross_entropy(&targets, CrossEntropyOpts::default())?;
    /// assert!((loss.to_scalar::<f32>()? - 0.126928).abs() < 1e-5); // only row 0 counts
    /// # Ok::<(), ember_tensor::Error>(())
    /// ```
    pub fn cross_entropy(&self, targets: &Tensor, opts: CrossEntropyOpts) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        self.same_device(OP, targets)?;
        if self.rank() != 2 || !self.dtype().is_float() {
            return Err(Error::shape(
                OP,
                format!(
                    "logits must be float (N, C), got {} {:?}",
                    self.dtype(),
                    self.dims()
                ),
            ));
        }
        let (n, c) = (self.dims()[0], self.dims()[1]);
        if targets.dtype() != DType::I64 || targets.dims() != [n] {
            return Err(Error::shape(
                OP,
                format!(
                    "targets must be i64 of shape [{n}], got {} {:?}",
                    targets.dtype(),
                    targets.dims()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&opts.label_smoothing) {
            return Err(Error::data(
                OP,
                format!("label_smoothing {} is outside [0, 1]", opts.label_smoothing),
            ));
        }
        let t = targets.to_vec::<i64>()?;
        if let Some(bad) = t
            .iter()
            .find(|&&v| v != opts.ignore_index && (v < 0 || v as usize >= c))
        {
            return Err(Error::index(
                OP,
                format!("target {bad} is out of range for {c} classes"),
            ));
        }
        self.fused(
            &[self],
            || {
                let per_row = match super::fast::cross_entropy_rows(self, &t, &opts) {
                    Some(rows) => rows, // (N,)
                    None => {
                        let (safe, keep) = ce_targets(targets, opts.ignore_index)?;
                        let lsm = self.log_softmax(-1)?; // (N, C)
                        let picked = lsm.gather(1, &safe.unsqueeze(1)?)?.squeeze(1)?; // (N,)
                        let mut per_row = picked.neg()?;
                        if opts.label_smoothing > 0.0 {
                            let smooth = lsm.mean(&[-1], false)?.neg()?;
                            per_row = per_row
                                .mul_scalar(1.0 - opts.label_smoothing)?
                                .add(&smooth.mul_scalar(opts.label_smoothing)?)?;
                        }
                        per_row.mul(&keep.to_dtype(self.dtype())?)?
                    }
                };
                let kept = t.iter().filter(|&&v| v != opts.ignore_index).count();
                match opts.reduction {
                    Reduction::None => Ok(per_row),
                    Reduction::Sum => per_row.sum(&[], false),
                    Reduction::Mean => per_row.sum(&[], false)?.div_scalar(kept as f64),
                }
            },
            || Op::CrossEntropy {
                logits: self.clone(),
                targets: targets.clone(),
                opts,
            },
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
                format!(
                    "expected q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) with H a \
                     multiple of Hkv; got {:?}, {:?}, {:?}",
                    q.dims(),
                    k.dims(),
                    v.dims()
                ),
            ));
        }
        let mask = attention_mask(q, k, opts)?;
        let scale = opts.scale.unwrap_or(1.0 / (q.dims()[3] as f64).sqrt());
        // The probabilities are kept for the backward pass (as PyTorch's math attention).
        let saved = std::cell::RefCell::new(None);
        q.fused(
            &[q, k, v],
            || {
                let (ke, ve) = (repeat_heads(k, q.dims()[1])?, repeat_heads(v, q.dims()[1])?);
                let fast = match opts.mask {
                    None => super::fast::attention_probs(q, &ke, opts.causal, scale),
                    Some(_) => None,
                };
                let p = match fast {
                    Some(p) => p,
                    None => attention_probs(q, &ke, mask.as_ref(), scale)?,
                }; // (B, H, Tq, Tk)
                let y = p.matmul(&ve)?;
                *saved.borrow_mut() = Some(p);
                Ok(y)
            },
            || Op::Attention {
                q: q.clone(),
                k: k.clone(),
                v: v.clone(),
                mask: mask.clone(),
                scale,
                probs: saved.borrow_mut().take(),
            },
        )
    }
}

/// Targets with ignored entries replaced by 0, and the Bool mask of kept rows.
pub fn ce_targets(targets: &Tensor, ignore_index: i64) -> Result<(Tensor, Tensor)> {
    let keep = targets.ne_scalar(ignore_index as f64)?;
    let safe = targets.masked_fill(&keep.logical_not()?, 0.0)?;
    Ok((safe, keep))
}

/// `k` with each of its `Hkv` heads repeated `h / Hkv` times along dim 1 (GQA).
pub fn repeat_heads(k: &Tensor, h: usize) -> Result<Tensor> {
    let (b, hkv, t, d) = (k.dims()[0], k.dims()[1], k.dims()[2], k.dims()[3]);
    if hkv == h {
        return Ok(k.clone());
    }
    k.unsqueeze(2)?
        .broadcast_to(&[b, hkv, h / hkv, t, d])?
        .reshape_to(&[b, h, t, d])
}

/// The additive float mask combining `opts.mask` and causality, or `None`.
fn attention_mask(q: &Tensor, k: &Tensor, opts: &AttentionOpts) -> Result<Option<Tensor>> {
    let (tq, tk) = (q.dims()[2], k.dims()[2]);
    const OP: &str = "scaled_dot_product_attention";
    let full = [q.dims()[0], q.dims()[1], tq, tk];
    let mut mask = match &opts.mask {
        None => None,
        Some(m) => {
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
                    format!(
                        "mask of shape {:?} does not broadcast to {full:?}",
                        m.dims()
                    ),
                ));
            }
            Some(if m.dtype() == DType::Bool {
                let zeros = Tensor::zeros(m.dims(), q.dtype(), q.device())?;
                zeros.masked_fill(&m.logical_not()?, f64::NEG_INFINITY)?
            } else {
                m.detach().to_dtype(q.dtype())?
            })
        }
    };
    if opts.causal {
        let above = Tensor::ones(&[tq, tk], DType::F32, q.device())?
            .triu(1)?
            .gt_scalar(0.0)?; // (Tq, Tk): true above the diagonal
        let blocked = Tensor::zeros(&[tq, tk], q.dtype(), q.device())?
            .masked_fill(&above, f64::NEG_INFINITY)?;
        mask = Some(match mask {
            Some(m) => m.add(&blocked)?,
            None => blocked,
        });
    }
    Ok(mask)
}

/// `softmax(q kᵀ · scale + mask)` with `k` already repeated to q's heads: (B, H, Tq, Tk).
pub fn attention_probs(
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    // Scaling q (T·D values) is cheaper than scaling the scores (T·T).
    let mut s = q.mul_scalar(scale)?.matmul(&k.transpose(-1, -2)?)?;
    if let Some(m) = mask {
        s = s.add(m)?;
    }
    s.softmax(-1)
}
