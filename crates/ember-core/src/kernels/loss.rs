//! Losses: cross-entropy of `(N, C)` logits with class targets, and cross-entropy of a linear
//! layer's output without its logits in memory; forward and backward.
//!
//! Cross-entropy: f32 and bf16 on the CPU run one pass per row, forward and backward
//! (`cpu::loss`), computed in f32 without the `(N, C)` log-probabilities in between.
//! Elsewhere: the composed definitions below, which are the reference. Under autocast the
//! loss runs in f32 (PyTorch's f32 list): `in_f32` gives an f32 loss from logits of a lower
//! precision without materializing an f32 copy of them where the kernel reads them directly
//! (an LM head's logits are the largest tensor of a step).
//!
//! Linear cross-entropy, `cross_entropy(x wᵀ, t)` with a mean or sum reduction: the logits
//! are computed a block of rows at a time (about 64 MiB of f32 each). While a block's logits
//! exist, its per-row losses and, when gradients are wanted, its logit gradient (that of an
//! output gradient of 1) are taken, and the logit gradient is folded at once into the
//! gradients of `x` `(N, K)` and `w` `(V, K)` (added into one buffer by the GEMM). The
//! backward only scales those by the real output gradient: nothing is recomputed. The blocks
//! call the `matmul` and cross-entropy entries, so this runs on every device; with a single
//! block it is the composed definition `x.matmul(wᵀ).cross_entropy(t)` step for step.

use super::cpu::loss as cpu;
use super::matmul::matmul_accumulate;
use super::trace::{Impl, note};
use crate::{CrossEntropyOpts, DType, Reduction, Result, Tensor};

/// The loss as `torch.nn.functional.cross_entropy`; `t` holds the targets' values (checked in
/// range by the op).
/// The loss is in f32 when `in_f32`, else in the logits' dtype.
pub(crate) fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    t: &[i64],
    opts: &CrossEntropyOpts,
    in_f32: bool,
) -> Result<Tensor> {
    let eps = opts.label_smoothing;
    let out_dtype = if in_f32 { DType::F32 } else { logits.dtype() };
    let per_row = match cpu::cross_entropy_rows(&logits.prim(), t, opts.ignore_index, eps) {
        Some(rows) => {
            note("cross_entropy", Impl::CpuF32);
            Tensor::from_vec(rows, &[t.len()], logits.device())?.to_dtype(out_dtype)? // (N,)
        }
        None => {
            note("cross_entropy", Impl::Composed);
            let logits = &logits.to_dtype(out_dtype)?;
            let (safe, keep) = kept_targets(targets, opts.ignore_index)?;
            let lsm = logits.log_softmax(-1)?; // (N, C)
            let picked = lsm.gather(1, &safe.unsqueeze(1)?)?.squeeze(1)?; // (N,)
            let mut per_row = picked.neg()?;
            if eps > 0.0 {
                let smooth = lsm.mean(&[-1], false)?.neg()?;
                per_row = per_row
                    .mul_scalar(1.0 - eps)?
                    .add(&smooth.mul_scalar(eps)?)?;
            }
            per_row.mul(&keep.to_dtype(logits.dtype())?)?
        }
    };
    let kept = t.iter().filter(|&&v| v != opts.ignore_index).count();
    match opts.reduction {
        Reduction::None => Ok(per_row),
        Reduction::Sum => per_row.sum(&[], false),
        Reduction::Mean => per_row.sum(&[], false)?.div_scalar(kept as f64),
    }
}

/// The gradient of [`cross_entropy`] with respect to the logits, given the output gradient
/// `g` (a scalar for the mean and sum reductions, `(N,)` for none). An f32 `g` for logits of
/// a lower precision means the loss ran in f32: so does its gradient.
pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    g: &Tensor,
) -> Result<Tensor> {
    if let Some(gx) = cpu_backward(logits, targets, opts, g)? {
        note("cross_entropy_backward", Impl::CpuF32);
        return Ok(gx);
    }
    note("cross_entropy_backward", Impl::Composed);
    let logits = &logits.to_dtype(g.dtype())?;
    let (n, c) = (logits.dims()[0], logits.dims()[1]);
    let p = logits.softmax(-1)?; // (N, C)
    let (safe, keep) = kept_targets(targets, opts.ignore_index)?;
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

/// The CPU kernel's gradient, or `None` when it does not apply (device, dtype, layout).
fn cpu_backward(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    g: &Tensor,
) -> Result<Option<Tensor>> {
    if g.device() != crate::Device::Cpu || !g.dtype().is_float() {
        return Ok(None);
    }
    let t = targets.to_vec::<i64>()?;
    let gv = g.to_vec::<f32>()?;
    let want = if opts.reduction == Reduction::None {
        t.len()
    } else {
        1
    };
    if gv.len() != want {
        return Ok(None);
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
    let p = cpu::cross_entropy_backward(&logits.prim(), &t, &scale, opts.label_smoothing);
    Ok(p.map(|p| logits.wrap(p, logits.shape())))
}

/// Targets with ignored entries replaced by 0, and the Bool mask of kept rows.
fn kept_targets(targets: &Tensor, ignore_index: i64) -> Result<(Tensor, Tensor)> {
    let keep = targets.ne_scalar(ignore_index as f64)?;
    let safe = targets.masked_fill(&keep.logical_not()?, 0.0)?;
    Ok((safe, keep))
}

// ---------------------------------------------------------------- linear cross-entropy

/// Logit elements per block (64 MiB of f32).
const BLOCK_ELEMENTS: usize = 16 << 20;

/// Rows of logits per block for a vocabulary of `v` (at least 16 rows).
pub(crate) fn block_rows(v: usize) -> usize {
    (BLOCK_ELEMENTS / v.max(1)).max(16)
}

/// The gradients of `x` and `w` for an output gradient of 1, taken in the forward.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grads {
    pub x: Option<Tensor>,
    pub w: Option<Tensor>,
}

/// The loss of `x (N, K)` by `w (V, K)` against targets `t` (in range, checked by the op;
/// `targets` is the same as an `(N,)` I64 tensor), in f32 when `in_f32`, and the gradients
/// `want`ed (`[x, w]`), `rows` logit rows at a time.
pub(crate) fn linear_cross_entropy(
    (x, w): (&Tensor, &Tensor),
    (targets, t): (&Tensor, &[i64]),
    opts: &CrossEntropyOpts,
    in_f32: bool,
    want: [bool; 2],
    rows: usize,
) -> Result<(Tensor, Grads)> {
    let n = x.dims()[0];
    let rows = rows.clamp(1, n.max(1));
    note(
        "linear_cross_entropy",
        if rows >= n {
            Impl::Composed
        } else {
            Impl::Blocked
        },
    );
    let per_row_opts = CrossEntropyOpts {
        reduction: Reduction::None,
        ..*opts
    };
    let kept = t.iter().filter(|&&v| v != opts.ignore_index).count();
    // The output gradient of 1 spread over the rows, as the reduction does (with every row
    // ignored the mean is NaN and the gradients are zeros, as PyTorch's).
    let row_grad = match opts.reduction {
        Reduction::Mean if kept == 0 => 0.0,
        Reduction::Mean => 1.0 / kept as f64,
        _ => 1.0,
    };
    let wt = w.transpose(0, 1)?; // (K, V)
    let (mut losses, mut gx) = (vec![], vec![]);
    let mut gw: Option<Tensor> = None;
    for r0 in (0..n).step_by(rows) {
        let len = rows.min(n - r0);
        let xb = x.narrow(0, r0, len)?; // (len, K)
        let tb = targets.narrow(0, r0, len)?; // (len,)
        let logits = xb.matmul(&wt)?; // (len, V)
        let tr = &t[r0..r0 + len];
        losses.push(cross_entropy(&logits, &tb, tr, &per_row_opts, in_f32)?);
        if !(want[0] || want[1]) {
            continue;
        }
        let loss_dtype = if in_f32 { DType::F32 } else { logits.dtype() };
        let g = Tensor::full(&[len], row_grad, loss_dtype, x.device())?;
        let d = cross_entropy_backward(&logits, &tb, &per_row_opts, &g)?; // (len, V)
        drop(logits);
        let d = d.to_dtype(x.dtype())?;
        if want[0] {
            gx.push(d.matmul(w)?); // (len, K)
        }
        if want[1] {
            let dt = d.transpose(0, 1)?; // (V, len)
            gw = Some(match gw {
                None => dt.matmul(&xb)?,
                Some(acc) => matmul_accumulate(acc, &dt, &xb)?,
            });
        }
    }
    let per_row = Tensor::cat(&losses.iter().collect::<Vec<_>>(), 0)?; // (N,)
    let loss = match opts.reduction {
        Reduction::Sum => per_row.sum(&[], false)?,
        _ => per_row.sum(&[], false)?.div_scalar(kept as f64)?,
    };
    let gx = match gx.len() {
        0 => None,
        _ => Some(Tensor::cat(&gx.iter().collect::<Vec<_>>(), 0)?),
    };
    Ok((loss, Grads { x: gx, w: gw }))
}

/// The gradients of `x` and `w` for the output gradient `g` (a scalar).
pub(crate) fn linear_cross_entropy_backward(
    grads: &Grads,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let g = g.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
    let scale = |t: &Option<Tensor>| match t {
        Some(t) if g == 1.0 => Ok(Some(t.clone())),
        Some(t) => t.mul_scalar(g).map(Some),
        None => Ok(None),
    };
    Ok(vec![scale(&grads.x)?, scale(&grads.w)?])
}

#[cfg(test)]
mod tests {
    use super::linear_cross_entropy;
    use crate::{
        CrossEntropyOpts, DType, Device, Generator, Impl, Reduction, Tensor, trace_kernels,
    };

    /// Blocks of rows give the loss and gradients of one block (the composed definition) to
    /// f32 rounding, with ignored rows, label smoothing, and block sizes that do not divide
    /// the rows.
    #[test]
    fn blocks_agree_with_one_block() -> crate::Result<()> {
        let mut g = Generator::new(3);
        let x = Tensor::randn_with(&mut g, &[11, 6], DType::F32, Device::Cpu)?;
        let w = Tensor::randn_with(&mut g, &[9, 6], DType::F32, Device::Cpu)?;
        let t: Vec<i64> = vec![0, 8, -100, 3, 3, 1, 7, -100, 2, 5, 4];
        let targets = Tensor::from_vec(t.clone(), &[11], Device::Cpu)?;
        for (reduction, label_smoothing) in [(Reduction::Mean, 0.0), (Reduction::Sum, 0.1)] {
            let opts = CrossEntropyOpts {
                reduction,
                label_smoothing,
                ..Default::default()
            };
            let run = |rows| {
                linear_cross_entropy((&x, &w), (&targets, &t), &opts, false, [true; 2], rows)
            };
            let (whole, wg) = run(11)?;
            for rows in [1, 4, 5] {
                let (out, used) = trace_kernels(|| run(rows));
                let (loss, bg) = out?;
                let used = used.into_iter().map(|u| (u.entry, u.implementation));
                assert!(
                    used.clone()
                        .any(|u| u == ("linear_cross_entropy", Impl::Blocked))
                );
                assert!(used.clone().any(|u| u.0 == "matmul_accumulate"));
                let close = |a: &Tensor, b: &Tensor| -> crate::Result<f32> {
                    let (a, b) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
                    let rel = |p: &f32, q: &f32| (p - q).abs() / q.abs().max(1.0);
                    Ok(a.iter().zip(&b).map(|(p, q)| rel(p, q)).fold(0.0, f32::max))
                };
                assert!(close(&loss, &whole)? < 1e-6, "loss, {rows} rows");
                assert!(close(bg.x.as_ref().unwrap(), wg.x.as_ref().unwrap())? < 1e-6);
                assert!(close(bg.w.as_ref().unwrap(), wg.w.as_ref().unwrap())? < 1e-6);
            }
        }
        Ok(())
    }

    /// Every target ignored: the mean is NaN and the gradients are zeros (PyTorch's answer).
    #[test]
    fn all_ignored_gives_nan_and_zero_gradients() -> crate::Result<()> {
        let x = Tensor::ones(&[3, 4], DType::F64, Device::Cpu)?;
        let w = Tensor::ones(&[5, 4], DType::F64, Device::Cpu)?;
        let t = vec![-100i64; 3];
        let targets = Tensor::from_vec(t.clone(), &[3], Device::Cpu)?;
        let opts = CrossEntropyOpts::default();
        let (loss, g) = linear_cross_entropy((&x, &w), (&targets, &t), &opts, false, [true; 2], 2)?;
        assert!(loss.to_scalar::<f64>()?.is_nan());
        for grad in [g.x.unwrap(), g.w.unwrap()] {
            assert!(grad.to_vec::<f64>()?.iter().all(|&v| v == 0.0));
        }
        Ok(())
    }
}
