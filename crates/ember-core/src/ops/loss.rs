//! Losses computed as one op: cross-entropy over logits, and a linear layer and
//! cross-entropy fused (`kernels::loss`).

use crate::autocast::{autocast_dtype, autocast_off, lower};
use crate::autograd::{Op, is_grad_enabled, no_grad};
use crate::kernels;
use crate::{CrossEntropyOpts, DType, Error, Reduction, Result, Tensor};

impl Tensor {
    /// Cross-entropy between logits `(N, C)` and I64 class targets `(N,)`, as
    /// `torch.nn.functional.cross_entropy` (ignore_index, reduction, label smoothing); or, with
    /// float targets of the logits' shape, probabilities (soft targets, as PyTorch:
    /// `-Σ_c t·log_softmax(x)` per row, label smoothing mixing the uniform distribution in,
    /// no ignored index; differentiable in both).
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
        if targets.dtype().is_float() && targets.dims() == self.dims() {
            return soft_cross_entropy(self, targets, &opts, in_f32);
        }
        let t = checked_targets(OP, targets, n, c, &opts)?;
        self.fused(
            &[self],
            || kernels::loss::cross_entropy(self, targets, &t, &opts, in_f32),
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
            let rows = kernels::loss::block_rows(v);
            kernels::loss::linear_cross_entropy((&x, &w), (targets, &t), &opts, in_f32, want, rows)?
        };
        // The rule reads only the gradients taken here: the inputs are kept as graph handles.
        Ok(loss.detach().record(&[&x, &w], || Op::LinearCrossEntropy {
            x: x.graph_handle(),
            weight: w.graph_handle(),
            grads,
        }))
    }
}

/// Cross-entropy with probability targets `(N, C)`, composed from differentiable ops (the
/// reference and only path): `-Σ_c t'·log_softmax(x)` per row, `t' = t(1-ε) + ε/C`.
fn soft_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    in_f32: bool,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(Error::data(
            OP,
            format!("label_smoothing {} is outside [0, 1]", opts.label_smoothing),
        ));
    }
    let dtype = match in_f32 {
        true => DType::F32,
        false => crate::DType::promote(logits.dtype(), targets.dtype()),
    };
    let (x, mut t) = (logits.to_dtype(dtype)?, targets.to_dtype(dtype)?);
    if opts.label_smoothing > 0.0 {
        let (eps, c) = (opts.label_smoothing, logits.dims()[1] as f64);
        t = t.mul_scalar(1.0 - eps)?.add_scalar(eps / c)?;
    }
    let rows = t.mul(&x.log_softmax(-1)?)?.sum(&[-1], false)?.neg()?; // (N,)
    match opts.reduction {
        Reduction::Mean => rows.mean(&[], false),
        Reduction::Sum => rows.sum(&[], false),
        Reduction::None => Ok(rows),
    }
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
