//! Optimizers with torch.optim's update rules, gradient clipping, learning-rate schedules, and
//! loss scaling for f16 training (`GradScaler`).
//!
//! ```
//! use ember_core::Backward;
//! use ember_nn::{Linear, Module, VarBuilder, VarStore};
//! use ember_optim::{AdamW, AdamWConfig, Optimizer};
//! use ember_core::{DType, Device, Tensor};
//!
//! let store = VarStore::new(Device::Cpu, DType::F32);
//! let lin = Linear::new(VarBuilder::new(&store), 3, 1, true)?;
//! let mut opt = AdamW::new(store.trainable_parameters(), AdamWConfig::default());
//! let x = Tensor::ones(&[4, 3], DType::F32, Device::Cpu)?;
//! for _ in 0..3 {
//!     let loss = lin.forward(&x)?.square()?.mean(&[], false)?;
//!     opt.step(&loss.backward()?)?;
//! }
//! # Ok::<(), ember_core::Error>(())
//! ```
#![warn(missing_docs)]

mod adam;
mod clip;
mod scaler;
mod schedule;
mod sgd;
mod state;

pub use adam::{AdamW, AdamWConfig};
pub use clip::clip_grad_norm;
pub use scaler::{GradScaler, GradScalerConfig};
pub use schedule::{Schedule, cosine_with_warmup};
pub use sgd::{Sgd, SgdConfig};

use ember_core::Gradients;
use ember_core::Result;
use ember_nn::Param;

/// Parameters sharing hyper-parameters (e.g. no weight decay on biases and norms).
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// The parameters.
    pub params: Vec<Param>,
    /// Learning-rate multiplier relative to the optimizer's `lr` (1.0 by default).
    pub lr_scale: f64,
    /// Weight decay of this group.
    pub weight_decay: f64,
}

/// Splits parameters torch-style: weight decay for matrices (rank >= 2), none for biases,
/// norms and other vectors.
pub fn decay_groups(params: Vec<Param>, weight_decay: f64) -> Vec<ParamGroup> {
    let (decay, no_decay): (Vec<Param>, Vec<Param>) =
        params.into_iter().partition(|p| p.tensor().rank() >= 2);
    vec![
        ParamGroup {
            params: decay,
            lr_scale: 1.0,
            weight_decay,
        },
        ParamGroup {
            params: no_decay,
            lr_scale: 1.0,
            weight_decay: 0.0,
        },
    ]
}

/// What every optimizer does.
pub trait Optimizer {
    /// One update from the gradients of a backward pass. Parameters without a gradient
    /// (frozen, or unused by the loss) are skipped, as torch.
    fn step(&mut self, grads: &Gradients) -> Result<()>;
    /// The current base learning rate.
    fn lr(&self) -> f64;
    /// Sets the base learning rate (schedules call this each step).
    fn set_lr(&mut self, lr: f64);
    /// Number of steps taken.
    fn steps(&self) -> u64;
    /// Bytes of the state tensors (Adam's moments, SGD's momentum buffers).
    fn state_bytes(&self) -> u64;
    /// Saves the state (tensors as safetensors, the rest as JSON) under `prefix`
    /// (`prefix.safetensors`, `prefix.json`).
    fn save(&self, prefix: &std::path::Path) -> Result<()>;
    /// Restores a state written by [`Optimizer::save`].
    fn load(&mut self, prefix: &std::path::Path) -> Result<()>;
}
