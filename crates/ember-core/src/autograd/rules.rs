//! Every backward rule, as one exhaustive `match` over [`Op`]: an op without a rule does not
//! compile. Each rule returns one gradient per recorded input (`Op::inputs` order), `None`
//! where no gradient flows. Rules run under `no_grad`, and are written with tensor ops; a
//! fused op's rule is its kernel entry's backward (`kernels::*`), which sits beside its
//! forward.

use std::f64::consts::PI;

use crate::autograd::Op;
use crate::kernels::reduce::sum_to;
use crate::kernels::{self, attention::Args};
use crate::{BinaryFn, DType, Error, ReduceFn, Result, Tensor, UnaryFn};

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
        UnaryFn::Gelu => kernels::activation::gelu_backward(x, g),
        UnaryFn::GeluTanh => kernels::activation::gelu_tanh_backward(x, g),
        UnaryFn::Silu => {
            let s = x.sigmoid()?;
            let d = s.mul(&x.mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?)?;
            g.mul(&d)
        }
        UnaryFn::Recip => g.mul(&y.square()?)?.neg(),
        // Piecewise constant: zero almost everywhere, as PyTorch's gradients.
        UnaryFn::Floor | UnaryFn::Ceil | UnaryFn::Round | UnaryFn::Trunc | UnaryFn::Sign => {
            g.zeros_like()
        }
    }
}

/// The gradients of a binary op's tracked operands (an untracked one's may have been
/// recorded without data: see `ops/binary.rs`).
fn binary(
    f: BinaryFn,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> Result<[Option<Tensor>; 2]> {
    let ga = |t: Tensor| sum_to(&t, a.dims());
    let gb = |t: Tensor| sum_to(&t, b.dims());
    let (wa, wb) = (a.is_tracked(), b.is_tracked());
    Ok(match f {
        BinaryFn::Add => [
            wa.then(|| ga(g.clone())).transpose()?,
            wb.then(|| gb(g.clone())).transpose()?,
        ],
        BinaryFn::Sub => [
            wa.then(|| ga(g.clone())).transpose()?,
            wb.then(|| gb(g.neg()?)).transpose()?,
        ],
        BinaryFn::Mul => [
            wa.then(|| ga(g.mul(b)?)).transpose()?,
            wb.then(|| gb(g.mul(a)?)).transpose()?,
        ],
        BinaryFn::Div => [
            wa.then(|| ga(g.div(b)?)).transpose()?,
            wb.then(|| gb(g.mul(a)?.div(&b.square()?)?.neg()?))
                .transpose()?,
        ],
        BinaryFn::Pow => {
            let pa = g.mul(b)?.mul(&a.pow(&b.sub_scalar(1.0)?)?)?;
            let pb = g.mul(y)?.mul(&a.log()?)?;
            [Some(ga(pa)?), Some(gb(pb)?)]
        }
    })
}

fn scalar(f: BinaryFn, x: &Tensor, s: f64, g: &Tensor) -> Result<Tensor> {
    match f {
        BinaryFn::Add | BinaryFn::Sub => Ok(g.clone()),
        BinaryFn::Mul => g.mul_scalar(s),
        BinaryFn::Div => g.div_scalar(s),
        BinaryFn::Pow => g.mul(&x.powf(s - 1.0)?)?.mul_scalar(s),
    }
}

/// True when `op`'s rule reads its output's values (`y`): such an output is kept whole by
/// the ops that consume it, never recorded as a data-less graph handle.
pub(crate) fn reads_output(op: &Op) -> bool {
    use UnaryFn as U;
    match op {
        Op::Unary(f, _) => matches!(
            f,
            U::Exp | U::Sqrt | U::Rsqrt | U::Tanh | U::Sigmoid | U::Recip
        ),
        Op::Binary(f, ..) => *f == BinaryFn::Pow,
        Op::Reduce { kind, .. } => matches!(kind, ReduceFn::Max | ReduceFn::Min),
        Op::LogSumExp { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::Attention { .. } => true,
        Op::Scalar(..)
        | Op::Clamp { .. }
        | Op::Extremum { .. }
        | Op::Where { .. }
        | Op::MaskedFill { .. }
        | Op::LayerNorm { .. }
        | Op::RmsNorm { .. }
        | Op::CrossEntropy { .. }
        | Op::LinearCrossEntropy { .. }
        | Op::SiluMul(..)
        | Op::Matmul(..)
        | Op::Reshape(_)
        | Op::Expand(_)
        | Op::Permute(..)
        | Op::Slice { .. }
        | Op::Cat(..)
        | Op::IndexSelect { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::QLinear { .. }
        | Op::Rotary { .. }
        | Op::Flip(..)
        | Op::Cumsum(..)
        | Op::Cumprod(..)
        | Op::ToDtype(_)
        | Op::ToDevice(_)
        | Op::Checkpoint(_)
        | Op::NotDifferentiable { .. } => false,
    }
}

/// Gradients of `op`'s inputs given the gradient `g` of its output `y`.
pub(crate) fn backward(op: &Op, y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let one = |t: Tensor| Ok(vec![Some(t)]);
    match op {
        Op::Unary(f, x) => one(unary(*f, x, y, g)?),
        Op::Binary(f, a, b) => Ok(binary(*f, a, b, y, g)?.to_vec()),
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
        Op::Softmax { dim, .. } => one(kernels::softmax::softmax_backward(y, g, *dim)?),
        Op::LogSoftmax { dim, .. } => one(kernels::softmax::log_softmax_backward(y, g, *dim)?),
        Op::LayerNorm {
            x,
            weight,
            bias,
            eps,
        } => kernels::norm::layer_norm_backward(x, weight.as_ref(), bias.as_ref(), *eps, g),
        Op::RmsNorm { x, weight, eps } => {
            kernels::norm::rms_norm_backward(x, weight.as_ref(), *eps, g)
        }
        Op::CrossEntropy {
            logits,
            targets,
            opts,
        } => one(kernels::loss::cross_entropy_backward(
            logits, targets, opts, g,
        )?),
        Op::SiluMul(a, b) => {
            let [ga, gb] = kernels::activation::silu_mul_backward(a, b, g)?;
            Ok(vec![Some(ga), Some(gb)])
        }
        Op::LinearCrossEntropy { grads, .. } => {
            kernels::loss::linear_cross_entropy_backward(grads, g)
        }
        Op::Attention {
            q,
            k,
            v,
            mask,
            causal,
            scale,
            saved,
        } => {
            let Some(saved) = saved else {
                return Err(Error::internal(
                    "scaled_dot_product_attention",
                    "the forward kept nothing for the backward",
                ));
            };
            let args = Args {
                q,
                k,
                v,
                mask: mask.as_ref(),
                causal: *causal,
                scale: *scale,
            };
            kernels::attention::attention_backward(&args, saved, y, g)
        }
        Op::Matmul(a, b) => {
            let [ga, gb] = kernels::matmul::matmul_backward(a, b, g)?;
            Ok(vec![ga, gb])
        }
        Op::QLinear { w, bias, .. } => {
            let mut grads = vec![Some(kernels::qlinear::backward(w, g)?)];
            if let Some(b) = bias {
                grads.push(Some(sum_to(g, b.dims())?));
            }
            Ok(grads)
        }
        Op::Rotary { cos, sin, .. } => one(kernels::rotary::rotary_backward(cos, sin, g)?),
        Op::Flip(_, dims) => {
            let dims: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
            one(g.flip(&dims)?)
        }
        // Each input adds to every later sum: the reversed running sum of the gradient.
        Op::Cumsum(_, d) => {
            let d = *d as isize;
            one(g.flip(&[d])?.cumsum(d)?.flip(&[d])?)
        }
        Op::Cumprod(x, d) => one(cumprod_backward(x, *d, g)?),
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
            one(kernels::embedding::index_select_backward(x, *dim, idx, g)?)
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
        // f recomputed from the forward's generator state, then differentiated.
        Op::Checkpoint(c) => c.backward(g),
        Op::NotDifferentiable { name, .. } => Err(Error::NotDifferentiable { op: name }),
    }
}

/// The gradient of `y = cumprod(x)` along `d` for upstream `g`.
///
/// `dL/dx_i = Σ_{k≥i} g_k Π_{j≤k, j≠i} x_j`. Without zeros that is the reversed running sum
/// of `g·y` over `x`; with zeros, the products skipping `x_i` are formed explicitly: row `i`
/// of an `(n, n)` table holds `x_j` for `j > i` and 1 elsewhere, and its running product
/// times the exclusive running product before `i` gives every term (O(n²) memory, as
/// PyTorch's fallback).
fn cumprod_backward(x: &Tensor, d: usize, g: &Tensor) -> Result<Tensor> {
    let di = d as isize;
    if !x.eq_scalar(0.0)?.any(&[], false)?.to_scalar::<bool>()? {
        let y = x.cumprod(di)?;
        return g.mul(&y)?.flip(&[di])?.cumsum(di)?.flip(&[di])?.div(x);
    }
    let n = x.dims()[d];
    let xl = x.transpose(di, -1)?; // (.., n)
    let gl = g.transpose(di, -1)?;
    let device = x.device();
    // (n, n): true where j > i (row i, column j), and where k >= i.
    let rows = Tensor::arange(0.0, n as f64, 1.0, DType::I64, device)?.unsqueeze(1)?;
    let cols = Tensor::arange(0.0, n as f64, 1.0, DType::I64, device)?.unsqueeze(0)?;
    let after = cols.gt(&rows)?;
    let from = cols.ge(&rows)?;
    let one = Tensor::full(&[], 1.0, x.dtype(), device)?;
    let table = Tensor::where_(&after, &xl.unsqueeze(-2)?, &one)?; // (.., n, n)
    let partial = table.cumprod(-1)?; // Π_{i<j≤k} x_j at (i, k)
    let zero = Tensor::full(&[], 0.0, x.dtype(), device)?;
    let terms = Tensor::where_(&from, &partial.mul(&gl.unsqueeze(-2)?)?, &zero)?;
    let inner = terms.sum(&[-1], false)?; // (.., n)
    let ones = xl.narrow(-1, 0, 1)?.ones_like()?;
    let shifted = Tensor::cat(&[&ones, &xl.narrow(-1, 0, n - 1)?], -1)?;
    let before = shifted.cumprod(-1)?; // Π_{j<i} x_j
    before.mul(&inner)?.transpose(di, -1)
}
