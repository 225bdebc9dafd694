//! Scaled dot-product attention: validation, autocast, the caller's mask, then one recorded
//! op whose forward and backward are the kernel entry `kernels::attention`.

use crate::autocast::{autocast_dtype, autocast_off, lower};
use crate::autograd::{Op, is_grad_enabled};
use crate::kernels;
use crate::{AttentionOpts, DType, Error, Result, Tensor};

impl Tensor {
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
    if !crate::base::shape::broadcasts_to(m.dims(), &full) {
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
