//! Tensor-level entry points to ember-backend's fused f32 CPU kernels ([`ember_backend::cpu`]).
//!
//! Each function returns `None` when the kernel does not apply (another device or dtype, a
//! non-contiguous input); the caller then computes the same value from composed ops, which stay
//! the definition. Results are untracked: the forward ops record themselves, and autograd rules
//! and optimizers run under `no_grad`.

use ember_backend::cpu;

use crate::tensor::Tensor;

pub use ember_backend::cpu::AdamStep;

/// Gradient of exact GELU at `x` given the output gradient `g` (same shape).
pub fn gelu_backward(x: &Tensor, g: &Tensor) -> Option<Tensor> {
    let p = cpu::gelu_backward(&x.prim(), &g.prim())?;
    Some(x.wrap(p, x.shape()))
}

/// Gradient of tanh-approximated GELU at `x` given the output gradient `g` (same shape).
pub fn gelu_tanh_backward(x: &Tensor, g: &Tensor) -> Option<Tensor> {
    let p = cpu::gelu_tanh_backward(&x.prim(), &g.prim())?;
    Some(x.wrap(p, x.shape()))
}

/// Gradients `(dx, dweight, dbias)` of `layer_norm(x, weight, bias, eps)`; `dweight` when
/// `weight` is given, `dbias` when `has_bias`.
pub fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    has_bias: bool,
    g: &Tensor,
    eps: f64,
) -> Option<(Tensor, Option<Tensor>, Option<Tensor>)> {
    let w = weight.map(|w| w.prim());
    let (dx, dw, db) = cpu::layer_norm_backward(&x.prim(), w.as_ref(), has_bias, &g.prim(), eps)?;
    let d = vec![*x.dims().last()?];
    Some((
        x.wrap(dx, x.shape()),
        dw.map(|p| x.wrap(p, d.clone())),
        db.map(|p| x.wrap(p, d.clone())),
    ))
}

/// `scale · p · (gp - Σ_last gp·p)`: the softmax backward along the last dim, scaled.
pub fn softmax_backward(p: &Tensor, gp: &Tensor, scale: f64) -> Option<Tensor> {
    let out = cpu::softmax_backward(&p.prim(), &gp.prim(), scale)?;
    Some(p.wrap(out, p.shape()))
}

/// `softmax(q kᵀ · scale)` with PyTorch's top-left causal mask when `causal`: the scores of one
/// GEMM normalized in place. `k` already has q's heads: `(B, H, Tk, D)`; result `(B, H, Tq, Tk)`.
pub fn attention_probs(q: &Tensor, k: &Tensor, causal: bool, scale: f64) -> Option<Tensor> {
    if !cpu::applies(&[&q.prim()]) {
        return None;
    }
    let s = q.matmul(&k.transpose(-1, -2).ok()?).ok()?;
    if !cpu::applies(&[&s.prim()]) {
        return None;
    }
    let shape = s.shape();
    let p = cpu::scaled_softmax(s.into_prim(), scale, causal)?;
    Some(q.wrap(p, shape))
}

/// One Adam(W) update: the new `(w, m, v)`. `m` and `v` are written in place when nothing else
/// holds them. When the kernel does not apply, `m` and `v` come back unchanged in `Err`.
#[allow(clippy::type_complexity)]
pub fn adamw(
    w: &Tensor,
    g: &Tensor,
    m: Tensor,
    v: Tensor,
    step: &AdamStep,
) -> Result<(Tensor, Tensor, Tensor), (Tensor, Tensor)> {
    let same = |t: &Tensor| t.dims() == w.dims();
    let fits = same(g) && same(&m) && same(&v);
    if !fits || !cpu::applies(&[&w.prim(), &g.prim(), &m.prim(), &v.prim()]) {
        return Err((m, v));
    }
    let shape = w.shape();
    let (mp, vp) = (m.into_prim(), v.into_prim());
    match cpu::adamw(&w.prim(), &g.prim(), mp, vp, step) {
        Some((w2, m2, v2)) => Ok((
            w.wrap(w2, shape.clone()),
            w.wrap(m2, shape.clone()),
            w.wrap(v2, shape),
        )),
        // Unreachable after `applies` and the shape check; the state is lost, so say so.
        None => unreachable!("cpu::adamw refused inputs that passed cpu::applies"),
    }
}
