//! Scaled dot-product attention `softmax(q kᵀ · scale + mask) v` with grouped-query heads:
//! forward and backward.
//!
//! Three implementations, chosen here:
//! - f32 on the CPU, no explicit mask, at least 64 queries: tiled with an online softmax
//!   (`cpu::attention`), memory linear in the sequence; the backward recomputes the
//!   probabilities from each query's saved log-sum-exp.
//! - f32 on the CPU, no explicit mask and fewer queries (decoding), or an additive f32 mask
//!   (BERT's padding): the scores of one GEMM normalized in place, the mask read in place
//!   (`cpu::softmax::scaled_softmax`); the probabilities are kept
//!   for the backward.
//! - One query per head over fewer key/value heads (grouped-query decoding, nothing tracked):
//!   each group's queries folded into rows of its kv head, so the cache is read in place
//!   instead of copied once per query head.
//! - bf16 on the CPU: the inputs widened to f32 for the two paths above, the results rounded
//!   back to bf16.
//! - everything else: the composed definition below, which is the reference.

use super::cast::in_f32;
use super::cpu;
use super::trace::{Impl, note};
use crate::{DType, Result, Tensor};

/// Queries from which the tiled kernel is used (one full query tile). Fewer queries (decoding
/// over a KV cache) take the few-row products over the probabilities. Measured on the nanoGPT
/// step at 128 tokens: the same speed as keeping the probabilities, 15% less peak memory.
const TILED_FROM_QUERIES: usize = 64;

/// What the forward keeps for the backward.
#[derive(Debug, Clone)]
pub(crate) enum Saved {
    /// The probabilities `(B, H, Tq, Tk)`, as PyTorch's math attention keeps them.
    Probs(Tensor),
    /// The log-sum-exp of each query's scaled scores `(B, Tq, H)`, from the tiled kernel.
    Lse(Tensor),
}

/// The inputs of one attention: `q (B, H, Tq, D)`, `k (B, Hkv, Tk, D)`, `v (B, Hkv, Tk, Dv)`,
/// an additive float mask broadcastable to `(B, H, Tq, Tk)`, causality (top-left aligned, as
/// PyTorch's `is_causal`) and the score scale.
#[derive(Clone, Copy)]
pub(crate) struct Args<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub mask: Option<&'a Tensor>,
    pub causal: bool,
    pub scale: f64,
}

impl<'a> Args<'a> {
    /// The same attention over other tensors.
    fn with(&self, q: &'a Tensor, k: &'a Tensor, v: &'a Tensor, mask: Option<&'a Tensor>) -> Self {
        Args {
            q,
            k,
            v,
            mask,
            ..*self
        }
    }
}

/// bf16 inputs on the CPU widened to f32 (the kernels read f32; PyTorch's bf16 attention
/// accumulates in f32 too): `q`, `k`, `v` and a float mask; `None` for other inputs.
fn widened(a: &Args) -> Result<Option<([Tensor; 3], Option<Tensor>)>> {
    let low = |t: &Tensor| t.dtype() == DType::BF16 && t.device() == crate::Device::Cpu;
    if !(low(a.q) && low(a.k) && low(a.v)) {
        return Ok(None);
    }
    let wide = |t: &Tensor| t.to_dtype(DType::F32);
    let mask = in_f32(a.mask)?; // the additive mask, in q's dtype
    Ok(Some(([wide(a.q)?, wide(a.k)?, wide(a.v)?], mask)))
}

/// The attention output `(B, H, Tq, Dv)` and what its backward needs (`None` when no input
/// is tracked and the folded grouped-query path ran).
pub(crate) fn attention(a: &Args) -> Result<(Tensor, Option<Saved>)> {
    if let Some(([q, k, v], mask)) = widened(a)? {
        note("attention", Impl::CpuBf16ViaF32);
        let wide = a.with(&q, &k, &v, mask.as_ref());
        let (y, saved) = attention(&wide)?;
        return Ok((y.to_dtype(a.q.dtype())?, saved));
    }
    let (q, k, v) = (a.q, a.k, a.v);
    let (b, h, hkv, tq) = (q.dims()[0], q.dims()[1], k.dims()[1], q.dims()[2]);
    let untracked = ![q, k, v].iter().any(|t| t.is_tracked());
    let decoding = tq == 1 && a.mask.is_none() && !a.causal;
    if decoding && h != hkv && hkv > 0 && h % hkv == 0 && untracked {
        // Grouped-query heads of one query (decoding): each group's queries become rows of
        // one kv head's attention, so the cache is read once instead of copied per head.
        let (d, dv) = (q.dims()[3], v.dims()[3]);
        let folded = q.contiguous()?.reshape_to(&[b, hkv, h / hkv * tq, d])?;
        let (y, _) = attention(&a.with(&folded, k, v, None))?; // (B, Hkv, rep·Tq, Dv)
        // No input is tracked: nothing is kept for a backward.
        return Ok((y.contiguous()?.reshape_to(&[b, h, tq, dv])?, None));
    }
    if a.mask.is_none() && tq >= TILED_FROM_QUERIES {
        let tiled = cpu::attention::attention(&q.prim(), &k.prim(), &v.prim(), a.causal, a.scale);
        if let Some((y, lse)) = tiled {
            note("attention", Impl::CpuF32Tiled);
            let (b, h, dv) = (q.dims()[0], q.dims()[1], v.dims()[3]);
            let lse = q.wrap(lse, vec![b, tq, h]);
            return Ok((q.wrap(y, vec![b, h, tq, dv]), Some(Saved::Lse(lse))));
        }
    }
    let (ke, ve) = (repeat_heads(k, h)?, repeat_heads(v, h)?);
    let p = match probs_in_place(a, &ke)? {
        Some(p) => {
            note("attention", Impl::CpuF32);
            p
        }
        None => {
            note("attention", Impl::Composed);
            probs(a, &ke)?
        }
    }; // (B, H, Tq, Tk)
    Ok((p.matmul(&ve)?, Some(Saved::Probs(p))))
}

/// Attention with dropout `p` on the probabilities: the composed definition recorded op by
/// op (the kernels have no dropout), so its gradient comes from the parts' rules.
pub(crate) fn attention_dropped(a: &Args, p: f64) -> Result<Tensor> {
    note("attention", Impl::Composed);
    let h = a.q.dims()[1];
    let probs = probs(a, &repeat_heads(a.k, h)?)?; // (B, H, Tq, Tk)
    let keep = probs.detach().full_like(1.0 - p)?.bernoulli()?;
    probs
        .mul(&keep)?
        .div_scalar(1.0 - p)?
        .matmul(&repeat_heads(a.v, h)?)
}

/// The gradients of `q`, `k` and `v` given the output `y` and its gradient `g`.
pub(crate) fn attention_backward(
    a: &Args,
    saved: &Saved,
    y: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    if let Some(([q, k, v], mask)) = widened(a)? {
        note("attention_backward", Impl::CpuBf16ViaF32);
        let wide = a.with(&q, &k, &v, mask.as_ref());
        let (y, g) = (y.to_dtype(DType::F32)?, g.to_dtype(DType::F32)?);
        let grads = attention_backward(&wide, saved, &y, &g)?;
        return grads
            .into_iter()
            .map(|gr| gr.map(|t| t.to_dtype(a.q.dtype())).transpose())
            .collect();
    }
    let (q, k, v) = (a.q, a.k, a.v);
    let p = match saved {
        Saved::Probs(p) => p.clone(),
        Saved::Lse(lse) => {
            let (qp, kp, vp) = (q.prim(), k.prim(), v.prim());
            let grads = cpu::attention::attention_backward(
                &qp,
                &kp,
                &vp,
                &y.prim(),
                &lse.prim(),
                &g.prim(),
                a.causal,
                a.scale,
            );
            if let Some((gq, gk, gv)) = grads {
                note("attention_backward", Impl::CpuF32Tiled);
                return Ok(vec![
                    Some(q.wrap(gq, q.shape())),
                    Some(k.wrap(gk, k.shape())),
                    Some(v.wrap(gv, v.shape())),
                ]);
            }
            // A gradient layout the kernel does not take: recompute the probabilities.
            probs(a, &repeat_heads(k, q.dims()[1])?)?
        }
    };
    let h = q.dims()[1];
    let (ke, ve) = (repeat_heads(k, h)?, repeat_heads(v, h)?);
    let gv = p.transpose(-1, -2)?.matmul(g)?; // (B, H, Tk, Dv)
    let gp = g.matmul(&ve.transpose(-1, -2)?)?; // (B, H, Tq, Tk)
    // The score gradient with the scale folded in: scale · p · (gp - Σ gp·p).
    let gs = match cpu::softmax::softmax_backward(&p.prim(), &gp.prim(), a.scale) {
        Some(gs) => {
            note("attention_backward", Impl::CpuF32);
            p.wrap(gs, p.shape())
        }
        None => {
            note("attention_backward", Impl::Composed);
            p.mul(&gp.sub(&gp.mul(&p)?.sum(&[-1], true)?)?)?
                .mul_scalar(a.scale)?
        }
    };
    let gq = gs.matmul(&ke)?;
    let gk = gs.transpose(-1, -2)?.matmul(q)?;
    let hkv = k.dims()[1];
    Ok(vec![
        Some(gq),
        Some(fold_heads(&gk, hkv)?),
        Some(fold_heads(&gv, hkv)?),
    ])
}

/// `softmax(q kᵀ · scale + mask)` (causal when asked) as one GEMM normalized in place, for f32
/// CPU tensors and an f32 mask with contiguous rows (or none); `None` when that does not apply.
fn probs_in_place(a: &Args, ke: &Tensor) -> Result<Option<Tensor>> {
    let is_cpu_f32 = |t: &Tensor| cpu::storage::is_cpu_f32(&t.prim());
    if !is_cpu_f32(a.q) || !is_cpu_f32(ke) {
        return Ok(None);
    }
    // The mask as a view of the scores' shape (zero strides where it broadcasts).
    let dims = [a.q.dims()[0], a.q.dims()[1], a.q.dims()[2], ke.dims()[2]];
    let mask = match a.mask {
        Some(m) if is_cpu_f32(m) => Some(m.broadcast_to(&dims)?.prim()),
        Some(_) => return Ok(None),
        None => None,
    };
    let rows = match &mask {
        Some(m) => match cpu::storage::Rows4::of(m) {
            Some(r) => Some(r),
            None => return Ok(None), // rows not contiguous: the composed definition
        },
        None => None,
    };
    let s = a.q.matmul(&ke.transpose(-1, -2)?)?; // (B, H, Tq, Tk)
    let shape = s.shape();
    let p = cpu::softmax::scaled_softmax(s.into_prim(), a.scale, a.causal, rows.as_ref());
    Ok(p.ok().map(|p| a.q.wrap(p, shape)))
}

/// The composed probabilities `softmax(q kᵀ · scale + mask)` with `k` already repeated to q's
/// heads: `(B, H, Tq, Tk)`.
fn probs(a: &Args, ke: &Tensor) -> Result<Tensor> {
    let q = a.q;
    // Scaling q (T·D values) is cheaper than scaling the scores (T·T).
    let mut s = q.mul_scalar(a.scale)?.matmul(&ke.transpose(-1, -2)?)?;
    if let Some(m) = a.mask {
        s = s.add(m)?;
    }
    if a.causal {
        let (tq, tk) = (q.dims()[2], ke.dims()[2]);
        let above = Tensor::ones(&[tq, tk], DType::F32, q.device())?
            .triu(1)?
            .gt_scalar(0.0)?; // (Tq, Tk): true above the diagonal
        s = s.masked_fill(&above, f64::NEG_INFINITY)?;
    }
    s.softmax(-1)
}

/// `k` with each of its `Hkv` heads repeated `h / Hkv` times along dim 1 (GQA).
fn repeat_heads(k: &Tensor, h: usize) -> Result<Tensor> {
    let (b, hkv, t, d) = (k.dims()[0], k.dims()[1], k.dims()[2], k.dims()[3]);
    if hkv == h {
        return Ok(k.clone());
    }
    k.unsqueeze(2)?
        .broadcast_to(&[b, hkv, h / hkv, t, d])?
        .reshape_to(&[b, h, t, d])
}

/// Sums repeated query-head gradients back onto `hkv` key/value heads.
fn fold_heads(g: &Tensor, hkv: usize) -> Result<Tensor> {
    let (b, h, t, d) = (g.dims()[0], g.dims()[1], g.dims()[2], g.dims()[3]);
    if h == hkv {
        return Ok(g.clone());
    }
    g.reshape_to(&[b, hkv, h / hkv, t, d])?.sum(&[2], false)
}
