//! Cross-entropy of `(N, C)` logits with class targets: forward and backward.
//!
//! f32 and bf16 on the CPU: one pass per row, forward and backward (`cpu::loss`), computed in
//! f32 without the `(N, C)` log-probabilities in between. Elsewhere: the composed definitions
//! below, which are the reference.
//!
//! Under autocast the loss runs in f32 (PyTorch's f32 list): `in_f32` gives an f32 loss from
//! logits of a lower precision without materializing an f32 copy of them where the kernel
//! reads them directly (an LM head's logits are the largest tensor of a step).

use super::cpu::loss as cpu;
use super::trace::{Impl, note};
use crate::ops::fused::{CrossEntropyOpts, Reduction};
use crate::{DType, Result, Tensor};

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
