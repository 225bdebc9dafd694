//! Every backward rule, as one exhaustive `match` over [`Op`]: an op without a rule does not
//! compile. Each rule returns one gradient per recorded input (`Op::inputs` order), `None`
//! where no gradient flows. Rules run under `no_grad`.

use std::f64::consts::PI;

use ember_tensor::ops::fast;
use ember_tensor::{
    BinaryFn, CrossEntropyOpts, DType, Error, Op, ReduceFn, Reduction, Result, Tensor, UnaryFn,
    attention_probs, ce_targets, repeat_heads,
};

/// `g` summed over the dims that broadcasting added, back to `shape`.
pub(crate) fn sum_to(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.dims() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let mut dims: Vec<isize> = (0..lead as isize).collect();
    for (i, &s) in shape.iter().enumerate() {
        if s == 1 && g.dims()[lead + i] != 1 {
            dims.push((lead + i) as isize);
        }
    }
    let summed = if dims.is_empty() {
        g.clone()
    } else {
        g.sum(&dims, true)?
    };
    summed.reshape_to(shape)
}

/// A reduced gradient broadcast back over the reduced `dims` of `shape`.
fn unreduce(g: &Tensor, dims: &[usize], keepdim: bool, shape: &[usize]) -> Result<Tensor> {
    let mut g = g.clone();
    if !keepdim {
        for &d in dims {
            g = g.unsqueeze(d as isize)?;
        }
    }
    g.broadcast_to(shape)
}

/// `1.0` where `mask` is true, `0.0` elsewhere, in `dtype`.
fn indicator(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    mask.to_dtype(dtype)
}

/// An I64 index vector shaped to scatter along `dim` of a tensor shaped like `like`.
fn along(idx: &Tensor, dim: usize, like: &[usize]) -> Result<Tensor> {
    let mut shape = vec![1; like.len()];
    shape[dim] = idx.numel();
    idx.reshape_to(&shape)?.broadcast_to(like)
}

fn unary(f: UnaryFn, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    match f {
        UnaryFn::Neg => g.neg(),
        UnaryFn::Abs => {
            let sign = indicator(&x.gt_scalar(0.0)?, x.dtype())?
                .sub(&indicator(&x.lt_scalar(0.0)?, x.dtype())?)?;
            g.mul(&sign)
        }
        UnaryFn::Exp => g.mul(y),
        UnaryFn::Log => g.div(x),
        UnaryFn::Sqrt => g.div(y)?.mul_scalar(0.5),
        UnaryFn::Rsqrt => g.mul(&y.powf(3.0)?)?.mul_scalar(-0.5),
        UnaryFn::Sin => g.mul(&x.cos()?),
        UnaryFn::Cos => g.mul(&x.sin()?)?.neg(),
        UnaryFn::Tanh => g.mul(&y.square()?.neg()?.add_scalar(1.0)?),
        UnaryFn::Sigmoid => g.mul(&y.mul(&y.neg()?.add_scalar(1.0)?)?),
        UnaryFn::Erf => {
            let d = x.square()?.neg()?.exp()?.mul_scalar(2.0 / PI.sqrt())?;
            g.mul(&d)
        }
        UnaryFn::Relu => g.mul(&indicator(&x.gt_scalar(0.0)?, x.dtype())?),
        UnaryFn::Gelu => {
            if let Some(gx) = fast::gelu_backward(x, g) {
                return Ok(gx);
            }
            // Φ(x) + x φ(x)
            let cdf = x
                .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
                .erf()?
                .add_scalar(1.0)?
                .mul_scalar(0.5)?;
            let pdf = x
                .square()?
                .mul_scalar(-0.5)?
                .exp()?
                .mul_scalar(1.0 / (2.0 * PI).sqrt())?;
            g.mul(&cdf.add(&x.mul(&pdf)?)?)
        }
        UnaryFn::GeluTanh => {
            if let Some(gx) = fast::gelu_tanh_backward(x, g) {
                return Ok(gx);
            }
            let k = (2.0 / PI).sqrt();
            let x2 = x.square()?;
            let u = x.add(&x.mul(&x2)?.mul_scalar(0.044715)?)?.mul_scalar(k)?;
            let t = u.tanh()?;
            let du = x2
                .mul_scalar(3.0 * 0.044715)?
                .add_scalar(1.0)?
                .mul_scalar(k)?;
            let sech2 = t.square()?.neg()?.add_scalar(1.0)?;
            let d = t
                .add_scalar(1.0)?
                .mul_scalar(0.5)?
                .add(&x.mul(&sech2)?.mul(&du)?.mul_scalar(0.5)?)?;
            g.mul(&d)
        }
        UnaryFn::Silu => {
            let s = x.sigmoid()?;
            let d = s.mul(&x.mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?)?;
            g.mul(&d)
        }
        UnaryFn::Recip => g.mul(&y.square()?)?.neg(),
    }
}

fn binary(f: BinaryFn, a: &Tensor, b: &Tensor, y: &Tensor, g: &Tensor) -> Result<[Tensor; 2]> {
    let (ga, gb) = match f {
        BinaryFn::Add => (g.clone(), g.clone()),
        BinaryFn::Sub => (g.clone(), g.neg()?),
        BinaryFn::Mul => (g.mul(b)?, g.mul(a)?),
        BinaryFn::Div => (g.div(b)?, g.mul(a)?.div(&b.square()?)?.neg()?),
        BinaryFn::Pow => {
            let ga = g.mul(b)?.mul(&a.pow(&b.sub_scalar(1.0)?)?)?;
            let gb = g.mul(y)?.mul(&a.log()?)?;
            (ga, gb)
        }
    };
    Ok([sum_to(&ga, a.dims())?, sum_to(&gb, b.dims())?])
}

fn scalar(f: BinaryFn, x: &Tensor, s: f64, g: &Tensor) -> Result<Tensor> {
    match f {
        BinaryFn::Add | BinaryFn::Sub => Ok(g.clone()),
        BinaryFn::Mul => g.mul_scalar(s),
        BinaryFn::Div => g.div_scalar(s),
        BinaryFn::Pow => g.mul(&x.powf(s - 1.0)?)?.mul_scalar(s),
    }
}

/// `torch.matmul`'s backward, including its 1-D and broadcast-batch cases.
fn matmul(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<[Tensor; 2]> {
    let a2 = if a.rank() == 1 {
        a.unsqueeze(0)?
    } else {
        a.clone()
    };
    let b2 = if b.rank() == 1 {
        b.unsqueeze(-1)?
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.rank(), b2.rank());
    let batch_rank = (ra - 2).max(rb - 2);
    let lead = |t: &Tensor| -> Vec<usize> {
        let mut s = vec![1; batch_rank + 2 - t.rank()];
        s.extend_from_slice(&t.dims()[..t.rank() - 2]);
        s
    };
    let (la, lb) = (lead(&a2), lead(&b2));
    let batch: Vec<usize> = la.iter().zip(&lb).map(|(&x, &y)| x.max(y)).collect();
    let mut gshape = batch;
    gshape.push(a2.dims()[ra - 2]);
    gshape.push(b2.dims()[rb - 1]);
    let g2 = g.reshape_to(&gshape)?; // (batch.., m, n)
    let ga = g2.matmul(&b2.transpose(-1, -2)?)?; // (batch.., m, k)
    let gb = if rb == 2 && ra > 2 {
        // One matrix for every batch: a single (k, batch·m) @ (batch·m, n) product instead of
        // per-batch products summed afterwards.
        let (k, n) = (a2.dims()[ra - 1], g2.dims()[g2.rank() - 1]);
        let a_rows = a2.reshape(&[-1, k as isize])?; // (batch·m, k)
        let g_rows = g2.reshape(&[-1, n as isize])?; // (batch·m, n)
        if fast::is_transposed(&b2) {
            // b is wᵀ (a tied output head): compute in w's layout, so that the transpose's
            // backward hands w a contiguous gradient.
            g_rows.transpose(0, 1)?.matmul(&a_rows)?.transpose(0, 1)? // (k, n) view of (n, k)
        } else {
            a_rows.transpose(0, 1)?.matmul(&g_rows)? // (k, n)
        }
    } else {
        a2.transpose(-1, -2)?.matmul(&g2)? // (batch.., k, n)
    };
    Ok([
        sum_to(&ga, a2.dims())?.reshape_to(a.dims())?,
        sum_to(&gb, b2.dims())?.reshape_to(b.dims())?,
    ])
}

/// Layer norm: gradients of x, weight, bias (the statistics are recomputed from x).
fn layer_norm(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    if let Some((gx, gw, gb)) = fast::layer_norm_backward(x, w, b.is_some(), g, eps) {
        // One gradient per input: x, then weight and bias where the op had them.
        let mut out = vec![Some(gx)];
        if w.is_some() {
            out.push(gw);
        }
        if b.is_some() {
            out.push(gb);
        }
        return Ok(out);
    }
    let d = [x.dims()[x.rank() - 1]];
    let centered = x.sub(&x.mean(&[-1], true)?)?;
    let rstd = centered
        .square()?
        .mean(&[-1], true)?
        .add_scalar(eps)?
        .rsqrt()?; // (.., 1)
    let xhat = centered.mul(&rstd)?;
    let gxhat = match w {
        Some(w) => g.mul(w)?,
        None => g.clone(),
    };
    let gx = gxhat
        .sub(&gxhat.mean(&[-1], true)?)?
        .sub(&xhat.mul(&gxhat.mul(&xhat)?.mean(&[-1], true)?)?)?
        .mul(&rstd)?;
    let mut out = vec![Some(gx)];
    if w.is_some() {
        out.push(Some(sum_to(&g.mul(&xhat)?, &d)?));
    }
    if b.is_some() {
        out.push(Some(sum_to(g, &d)?));
    }
    Ok(out)
}

/// RMS norm: gradients of x and weight.
fn rms_norm(x: &Tensor, w: Option<&Tensor>, eps: f64, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let r = x.square()?.mean(&[-1], true)?.add_scalar(eps)?.rsqrt()?; // (.., 1)
    let gxn = match w {
        Some(w) => g.mul(w)?,
        None => g.clone(),
    };
    let dot = gxn.mul(x)?.mean(&[-1], true)?;
    let gx = gxn.mul(&r)?.sub(&x.mul(&r.powf(3.0)?)?.mul(&dot)?)?;
    let mut out = vec![Some(gx)];
    if w.is_some() {
        let d = [x.dims()[x.rank() - 1]];
        out.push(Some(sum_to(&g.mul(x)?.mul(&r)?, &d)?));
    }
    Ok(out)
}

/// Cross-entropy: `(softmax - target distribution)` on kept rows, scaled by the upstream.
fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    g: &Tensor,
) -> Result<Tensor> {
    if let Some(gx) = fast::cross_entropy_backward(logits, targets, opts, g) {
        return Ok(gx);
    }
    let (n, c) = (logits.dims()[0], logits.dims()[1]);
    let p = logits.softmax(-1)?; // (N, C)
    let (safe, keep) = ce_targets(targets, opts.ignore_index)?;
    let ones = Tensor::ones(&[n, 1], logits.dtype(), logits.device())?;
    let onehot = p.zeros_like()?.scatter_add(1, &safe.unsqueeze(1)?, &ones)?;
    let eps = opts.label_smoothing;
    let target = onehot.mul_scalar(1.0 - eps)?.add_scalar(eps / c as f64)?;
    let d = p
        .sub(&target)?
        .mul(&keep.to_dtype(logits.dtype())?.unsqueeze(1)?)?;
    let scale = match opts.reduction {
        Reduction::None => g.unsqueeze(1)?,
        Reduction::Sum => g.clone(),
        Reduction::Mean => {
            let kept = keep
                .to_dtype(DType::I64)?
                .sum(&[], false)?
                .to_scalar::<i64>()?;
            g.div_scalar(kept as f64)?
        }
    };
    d.mul(&scale)
}

/// Sums repeated query-head gradients back onto `hkv` key/value heads.
fn fold_heads(g: &Tensor, hkv: usize) -> Result<Tensor> {
    let (b, h, t, d) = (g.dims()[0], g.dims()[1], g.dims()[2], g.dims()[3]);
    if h == hkv {
        return Ok(g.clone());
    }
    g.reshape_to(&[b, hkv, h / hkv, t, d])?.sum(&[2], false)
}

/// Attention: the probabilities saved by the forward (or recomputed from q and k), then the
/// standard chain.
fn attention(
    [q, k, v]: [&Tensor; 3],
    mask: Option<&Tensor>,
    scale: f64,
    probs: Option<&Tensor>,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let h = q.dims()[1];
    let (ke, ve) = (repeat_heads(k, h)?, repeat_heads(v, h)?);
    let p = match probs {
        Some(p) => p.clone(),
        None => attention_probs(q, &ke, mask, scale)?,
    }; // (B, H, Tq, Tk)
    let gv = p.transpose(-1, -2)?.matmul(g)?; // (B, H, Tk, Dv)
    let gp = g.matmul(&ve.transpose(-1, -2)?)?; // (B, H, Tq, Tk)
    // The score gradient with the scale folded in: scale · p · (gp - Σ gp·p).
    let gs = match fast::softmax_backward(&p, &gp, scale) {
        Some(gs) => gs,
        None => p
            .mul(&gp.sub(&gp.mul(&p)?.sum(&[-1], true)?)?)?
            .mul_scalar(scale)?,
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

/// Gradients of `op`'s inputs given the gradient `g` of its output `y`.
pub(crate) fn backward(op: &Op, y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let one = |t: Tensor| Ok(vec![Some(t)]);
    match op {
        Op::Unary(f, x) => one(unary(*f, x, y, g)?),
        Op::Binary(f, a, b) => {
            let [ga, gb] = binary(*f, a, b, y, g)?;
            Ok(vec![Some(ga), Some(gb)])
        }
        Op::Scalar(f, x, s) => one(scalar(*f, x, *s, g)?),
        Op::Clamp { x, min, max } => {
            let mut keep = x.ge_scalar(min.unwrap_or(f64::NEG_INFINITY))?;
            if let Some(hi) = max {
                let below = indicator(&x.le_scalar(*hi)?, DType::I64)?;
                keep = indicator(&keep, DType::I64)?.mul(&below)?.gt_scalar(0.0)?;
            }
            one(g.mul(&indicator(&keep, g.dtype())?)?)
        }
        Op::Extremum { a, b, max } => {
            // Ties share the gradient equally, as PyTorch.
            let (lose_a, lose_b) = if *max {
                (a.lt(b)?, b.lt(a)?)
            } else {
                (a.gt(b)?, b.gt(a)?)
            };
            let tie = a.eq(b)?;
            let half = Tensor::where_(&tie, &g.mul_scalar(0.5)?, g)?;
            let ga = half.masked_fill(&lose_a.broadcast_to(half.dims())?, 0.0)?;
            let gb = half.masked_fill(&lose_b.broadcast_to(half.dims())?, 0.0)?;
            Ok(vec![
                Some(sum_to(&ga, a.dims())?),
                Some(sum_to(&gb, b.dims())?),
            ])
        }
        Op::Where { cond, a, b } => {
            let zero = g.zeros_like()?;
            let ga = Tensor::where_(cond, g, &zero)?;
            let gb = Tensor::where_(cond, &zero, g)?;
            Ok(vec![
                Some(sum_to(&ga, a.dims())?),
                Some(sum_to(&gb, b.dims())?),
            ])
        }
        Op::MaskedFill { mask, .. } => one(g.masked_fill(mask, 0.0)?),
        Op::Reduce {
            kind,
            x,
            dims,
            keepdim,
        } => {
            let ge = unreduce(g, dims, *keepdim, x.dims())?;
            match kind {
                ReduceFn::Sum => one(ge),
                ReduceFn::Mean => {
                    let n: usize = dims.iter().map(|&d| x.dims()[d]).product();
                    one(ge.div_scalar(n as f64)?)
                }
                ReduceFn::Max | ReduceFn::Min => {
                    let ye = unreduce(y, dims, *keepdim, x.dims())?;
                    let hit = indicator(&x.eq(&ye)?, g.dtype())?;
                    let sdims: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
                    let count = hit.sum(&sdims, true)?;
                    one(ge.mul(&hit)?.div(&count)?)
                }
            }
        }
        Op::LogSumExp { x, dims, keepdim } => {
            let ge = unreduce(g, dims, *keepdim, x.dims())?;
            let ye = unreduce(y, dims, *keepdim, x.dims())?;
            one(ge.mul(&x.sub(&ye)?.exp()?)?)
        }
        Op::Softmax { dim, .. } => {
            let d = *dim as isize;
            let dot = g.mul(y)?.sum(&[d], true)?;
            one(y.mul(&g.sub(&dot)?)?)
        }
        Op::LogSoftmax { dim, .. } => {
            let sum = g.sum(&[*dim as isize], true)?;
            one(g.sub(&y.exp()?.mul(&sum)?)?)
        }
        Op::LayerNorm {
            x,
            weight,
            bias,
            eps,
        } => layer_norm(x, weight.as_ref(), bias.as_ref(), *eps, g),
        Op::RmsNorm { x, weight, eps } => rms_norm(x, weight.as_ref(), *eps, g),
        Op::CrossEntropy {
            logits,
            targets,
            opts,
        } => one(cross_entropy(logits, targets, opts, g)?),
        Op::Attention {
            q,
            k,
            v,
            mask,
            scale,
            probs,
        } => attention([q, k, v], mask.as_ref(), *scale, probs.as_ref(), g),
        Op::Matmul(a, b) => {
            let [ga, gb] = matmul(a, b, g)?;
            Ok(vec![Some(ga), Some(gb)])
        }
        Op::Reshape(x) => one(g.reshape_to(x.dims())?),
        Op::Expand(x) => one(sum_to(g, x.dims())?),
        Op::Permute(_, perm) => {
            let mut inv = vec![0isize; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i as isize;
            }
            one(g.permute(&inv)?)
        }
        Op::Slice {
            x,
            dim,
            start,
            end,
            step,
        } => {
            if *step == 1 {
                // Zeros around the gradient: two copies instead of a scatter.
                let zeros = |len: usize| -> Result<Option<Tensor>> {
                    if len == 0 {
                        return Ok(None);
                    }
                    let mut shape = x.dims().to_vec();
                    shape[*dim] = len;
                    Tensor::zeros(&shape, g.dtype(), g.device()).map(Some)
                };
                let (before, after) = (zeros(*start)?, zeros(x.dims()[*dim] - *end)?);
                let refs: Vec<&Tensor> = [before.as_ref(), Some(g), after.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if refs.len() == 1 {
                    return one(g.clone());
                }
                return one(Tensor::cat(&refs, *dim as isize)?);
            }
            let positions: Vec<i64> = (*start..*end).step_by(*step).map(|v| v as i64).collect();
            let n = positions.len();
            let idx = Tensor::from_vec(positions, &[n], g.device())?;
            let zeros = Tensor::zeros(x.dims(), g.dtype(), g.device())?;
            one(zeros.scatter_add(*dim as isize, &along(&idx, *dim, g.dims())?, g)?)
        }
        Op::Cat(xs, dim) => {
            let sizes: Vec<usize> = xs.iter().map(|t| t.dims()[*dim]).collect();
            let parts = g.split_sizes(&sizes, *dim as isize)?;
            Ok(parts.into_iter().map(Some).collect())
        }
        Op::IndexSelect { x, dim, idx } => {
            if *dim == 0
                && x.rank() == 2
                && let Some(gx) = fast::index_rows_backward(x.dims()[0], idx, g)
            {
                return one(gx);
            }
            let zeros = Tensor::zeros(x.dims(), g.dtype(), g.device())?;
            one(zeros.scatter_add(*dim as isize, &along(idx, *dim, g.dims())?, g)?)
        }
        Op::Gather { x, dim, idx } => {
            let zeros = Tensor::zeros(x.dims(), g.dtype(), g.device())?;
            one(zeros.scatter_add(*dim as isize, idx, g)?)
        }
        Op::ScatterAdd { dim, idx, .. } => {
            Ok(vec![Some(g.clone()), Some(g.gather(*dim as isize, idx)?)])
        }
        Op::ToDtype(x) => one(g.to_dtype(x.dtype())?),
        Op::ToDevice(x) => one(g.to_device(x.device())?),
        Op::NotDifferentiable { name, .. } => Err(Error::NotDifferentiable { op: name }),
    }
}
