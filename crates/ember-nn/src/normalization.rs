//! Batch and group normalization as `torch.nn`'s (`BatchNorm1d/2d`, `GroupNorm`), with
//! PyTorch's parameter and buffer names (`weight`, `bias`, `running_mean`, `running_var`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ember_core::{Error, Result, Tensor, no_grad};

use crate::Module;
use crate::builder::VarBuilder;
use crate::store::{Init, Param};

/// Batch normalization over the channel dim 1 of `(N, C)`, `(N, C, L)` or `(N, C, H, W)`, as
/// `nn.BatchNorm1d` / `nn.BatchNorm2d`. In training mode (the store's) it normalizes with the
/// batch statistics and updates `running_mean` / `running_var` (unbiased) with `momentum`; in
/// eval mode it uses the running statistics. The running statistics are frozen parameters
/// (saved and loaded with the rest); PyTorch's `num_batches_tracked` counter is not kept.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// `(C,)` scale
    pub weight: Param,
    /// `(C,)` shift
    pub bias: Param,
    /// `(C,)` running mean
    pub running_mean: Param,
    /// `(C,)` running variance
    pub running_var: Param,
    /// added to the variance
    pub eps: f64,
    /// weight of the new batch in the running statistics (PyTorch's default 0.1)
    pub momentum: f64,
    training: Arc<AtomicBool>,
}

/// `nn.BatchNorm1d`.
pub type BatchNorm1d = BatchNorm;
/// `nn.BatchNorm2d`.
pub type BatchNorm2d = BatchNorm;

impl BatchNorm {
    /// A batch norm over `channels` with PyTorch's defaults `eps = 1e-5`, `momentum = 0.1`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<BatchNorm> {
        BatchNorm::with(vb, channels, 1e-5, 0.1)
    }

    /// A batch norm with explicit `eps` and `momentum`.
    pub fn with(vb: VarBuilder, channels: usize, eps: f64, momentum: f64) -> Result<BatchNorm> {
        let running_mean = vb.get("running_mean", &[channels], Init::Zeros)?;
        let running_var = vb.get("running_var", &[channels], Init::Ones)?;
        running_mean.set_trainable(false)?;
        running_var.set_trainable(false)?;
        Ok(BatchNorm {
            weight: vb.get("weight", &[channels], Init::Ones)?,
            bias: vb.get("bias", &[channels], Init::Zeros)?,
            running_mean,
            running_var,
            eps,
            momentum,
            training: vb.store().training_flag(),
        })
    }
}

/// The channel count of `weight (C,)`, after checking that `x` is `(N, C, ..)`.
fn check_channels(op: &'static str, x: &Tensor, weight: &Param) -> Result<usize> {
    let c = weight.dims()[0];
    if x.rank() < 2 || x.dims()[1] != c {
        return Err(Error::shape(
            op,
            &[x.dims()],
            format!(
                "{}: expects (N, {c}, ..), got {:?}",
                weight.name(),
                x.dims()
            ),
        ));
    }
    Ok(c)
}

/// `(C,)` reshaped to broadcast over dim 1 of a rank-`rank` input.
fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[1] = t.numel();
    t.reshape_to(&shape)
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = check_channels("BatchNorm", x, &self.weight)?;
        let r = x.rank();
        let dims: Vec<isize> = std::iter::once(0).chain(2..r as isize).collect();
        let (mean, var) = if self.training.load(Ordering::Relaxed) {
            let n = x.numel() / c;
            if n < 2 {
                return Err(Error::shape(
                    "BatchNorm",
                    &[x.dims()],
                    "training needs more than one value per channel",
                ));
            }
            let mean = x.mean(&dims, false)?; // (C,)
            let var = x.var(&dims, 0, false)?;
            let _guard = no_grad();
            let m = self.momentum;
            let unbiased = var.detach().mul_scalar(n as f64 / (n - 1) as f64)?;
            let rm = self.running_mean.tensor().mul_scalar(1.0 - m)?;
            self.running_mean
                .set(&rm.add(&mean.detach().mul_scalar(m)?)?)?;
            let rv = self.running_var.tensor().mul_scalar(1.0 - m)?;
            self.running_var.set(&rv.add(&unbiased.mul_scalar(m)?)?)?;
            (mean, var)
        } else {
            (self.running_mean.tensor(), self.running_var.tensor())
        };
        let inv = var.add_scalar(self.eps)?.rsqrt()?;
        let scale = inv.mul(&self.weight.tensor())?;
        let shift = self.bias.tensor().sub(&mean.mul(&scale)?)?;
        x.mul(&per_channel(&scale, r)?)?
            .add(&per_channel(&shift, r)?)
    }
}

/// Group normalization, as `nn.GroupNorm(num_groups, channels)`: the channels of `(N, C,
/// ..)` split into groups, each normalized over its channels and positions, then scaled and
/// shifted per channel.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    /// number of groups (divides the channels)
    pub groups: usize,
    /// `(C,)` scale
    pub weight: Param,
    /// `(C,)` shift
    pub bias: Param,
    /// added to the variance (PyTorch's default 1e-5)
    pub eps: f64,
}

impl GroupNorm {
    /// A group norm with `eps = 1e-5` and an affine transform (PyTorch's defaults).
    pub fn new(vb: VarBuilder, groups: usize, channels: usize) -> Result<GroupNorm> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::data(
                "GroupNorm",
                format!("{channels} channels do not split into {groups} groups"),
            ));
        }
        Ok(GroupNorm {
            groups,
            weight: vb.get("weight", &[channels], Init::Ones)?,
            bias: vb.get("bias", &[channels], Init::Zeros)?,
            eps: 1e-5,
        })
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_channels("GroupNorm", x, &self.weight)?;
        let g = x.reshape(&[x.dims()[0] as isize, self.groups as isize, -1])?; // (N, G, rest)
        let mean = g.mean(&[-1], true)?;
        let var = g.var(&[-1], 0, true)?;
        let y = g.sub(&mean)?.mul(&var.add_scalar(self.eps)?.rsqrt()?)?;
        let y = y.reshape_to(x.dims())?;
        let r = x.rank();
        y.mul(&per_channel(&self.weight.tensor(), r)?)?
            .add(&per_channel(&self.bias.tensor(), r)?)
    }
}
