//! Tensor-level entry points to ember-backend's fused f32 CPU kernels ([`ember_backend::cpu`]).
//!
//! Each function returns `None` when the kernel does not apply (another device or dtype, a
//! non-contiguous input); the caller then computes the same value from composed ops, which stay
//! the definition. Results are untracked: the forward ops record themselves, and autograd rules
//! and optimizers run under `no_grad`.

use ember_backend::cpu;

use crate::ops::fused::{CrossEntropyOpts, Reduction};
use crate::tensor::Tensor;

pub use ember_backend::cpu::AdamStep;

/// True when `t` is a CPU matrix stored as the transpose of a row-major one (a transposed
/// weight): a gradient for it is best produced in that layout too.
pub fn is_transposed(t: &Tensor) -> bool {
    cpu::is_transposed(&t.prim())
}

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
    if !cpu::is_cpu_f32(&q.prim()) || !cpu::is_cpu_f32(&k.prim()) {
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

/// Per-row cross-entropy losses of `logits (N, C)` (0 where the target is ignored); the caller
/// has checked the targets' range.
pub fn cross_entropy_rows(
    logits: &Tensor,
    targets: &[i64],
    opts: &CrossEntropyOpts,
) -> Option<Tensor> {
    let n = targets.len();
    let rows = cpu::cross_entropy_rows(
        &logits.prim(),
        targets,
        opts.ignore_index,
        opts.label_smoothing,
    )?;
    Tensor::from_vec(rows, &[n], logits.device()).ok()
}

/// Gradient of `cross_entropy(logits, targets, opts)` given the output gradient `g` (a scalar
/// for the mean and sum reductions, `(N,)` for none).
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    g: &Tensor,
) -> Option<Tensor> {
    if !cpu::applies(&[&logits.prim(), &g.prim()]) {
        return None;
    }
    let t = targets.to_vec::<i64>().ok()?;
    let gv = g.to_vec::<f32>().ok()?;
    let want = if opts.reduction == Reduction::None {
        t.len()
    } else {
        1
    };
    if gv.len() != want {
        return None;
    }
    let keep = |i: usize| t[i] != opts.ignore_index;
    let kept = (0..t.len()).filter(|&i| keep(i)).count();
    let scale: Vec<f32> = (0..t.len())
        .map(|i| match (keep(i), opts.reduction) {
            (false, _) => 0.0,
            (true, Reduction::None) => gv[i],
            (true, Reduction::Sum) => gv[0],
            (true, Reduction::Mean) => gv[0] / kept as f32,
        })
        .collect();
    let p = cpu::cross_entropy_backward(&logits.prim(), &t, &scale, opts.label_smoothing)?;
    Some(logits.wrap(p, logits.shape()))
}

/// Gradient of `index_select(x, 0, idx)` for a 2-D `x` of `rows` rows (an embedding lookup):
/// `g`'s rows added at the selected rows of zeros.
pub fn index_rows_backward(rows: usize, idx: &Tensor, g: &Tensor) -> Option<Tensor> {
    if !cpu::applies(&[&g.prim()]) {
        return None;
    }
    let i = idx.to_vec::<i64>().ok()?;
    let p = cpu::index_rows_backward(rows, &i, &g.prim())?;
    let d = *g.dims().last()?;
    Some(g.wrap(p, vec![rows, d]))
}

/// `acc + x`, written into `acc`'s buffer when nothing else shares it (as a gradient being
/// accumulated); `acc` comes back unchanged in `Err` when the kernel does not apply.
pub fn add_into(acc: Tensor, x: &Tensor) -> Result<Tensor, Tensor> {
    if acc.dims() != x.dims() || acc.dtype() != x.dtype() || acc.device() != x.device() {
        return Err(acc);
    }
    let shape = acc.shape();
    match cpu::add_into(acc.into_prim(), &x.prim()) {
        Ok(sum) => Ok(x.wrap(sum, shape)),
        Err(p) => Err(x.wrap(p, shape)),
    }
}

/// `src` written into `buf` in place at position `at` along `dim` (a growing KV cache), when
/// `buf` is a contiguous f32 CPU tensor that nothing else holds and `src` fits; `buf` comes
/// back unchanged in `Err` otherwise.
pub fn write_along(buf: Tensor, dim: usize, at: usize, src: &Tensor) -> Result<Tensor, Tensor> {
    let shape = buf.shape();
    match cpu::write_along(buf.into_prim(), dim, at, &src.prim()) {
        Ok(p) => Ok(src.wrap(p, shape)),
        Err(p) => Err(src.wrap(p, shape)),
    }
}

/// True for an f32 tensor on the CPU (the fused kernels' domain), whatever its layout.
pub fn is_cpu_f32(t: &Tensor) -> bool {
    cpu::is_cpu_f32(&t.prim())
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
