//! Ember: define, train and run transformer models in Rust with PyTorch's semantics.
//!
//! This umbrella crate re-exports the layers so one dependency is enough:
//! [`Tensor`] (dynamic rank, run-time dtype and device, NumPy broadcasting, `Result` errors),
//! [`Device`], [`DType`] and the one [`Error`] type. `use ember::prelude::*` brings the
//! everyday names into scope.
//!
//! ```
//! use ember::prelude::*;
//!
//! let x = Tensor::randn(&[2, 3], DType::F32, Device::Cpu)?;
//! let w = Tensor::randn(&[3, 4], DType::F32, Device::Cpu)?;
//! let probs = x.matmul(&w)?.softmax(-1)?; // (2, 4), rows sum to 1
//! let total = probs.sum(&[], false)?.to_scalar::<f32>()?;
//! assert!((total - 2.0).abs() < 1e-5);
//! # Ok::<(), ember::Error>(())
//! ```
//!
//! Crates, lowest first: `ember-core` (devices, dtypes, errors, the `Tensor` and every op,
//! autograd with [`Backward`] and [`gradcheck`], mixed precision with [`autocast`](mod@autocast), and the
//! kernel layer; its fused updates as [`fused`]), `ember-weights` (safetensors and GGUF, as [`weights`]),
//! `ember-nn` (layers with HF names, as [`nn`]), `ember-optim` (SGD, Adam, AdamW, clipping,
//! schedules, as [`optim`]), `ember-train` (the training loop and checkpoints, as [`train`]).
//! `ember-models` (GPT-2, Llama, BERT, tokenizers and generation, as [`models`]).
//! [`assets`] finds the pretrained weights and texts `scripts/fetch_assets.sh` downloads;
//! [`cli`] has the flag parsers and error reporting of command-line programs.
#![warn(missing_docs)]

pub mod assets;
pub mod cli;

pub use ember_core::autocast;
pub use ember_core::clock;
pub use ember_core::fused;
pub use ember_core::memory;
pub use ember_core::quant;
pub use ember_core::usage;
pub use ember_core::{
    AttentionOpts, AutocastGuard, Backward, BinaryFn, CompareFn, ConvOpts, CrossEntropyOpts, DType,
    Device, ELLIPSIS, Element, EnableGradGuard, Error, Generator, GradcheckReport, Gradients, Impl,
    Indexer, IoError, Ix, KernelUse, NEW_AXIS, NoGradGuard, OpKind, Operand, PadMode, PoolOpts,
    ReduceFn, Reduction, Result, Tensor, TensorId, UnaryFn, amx_peak, bf16, checkpoint,
    cpu_kernels, enable_grad, f16, gradcheck, is_grad_enabled, manual_seed, no_grad, trace_kernels,
};
/// Data parallel across processes: process groups (MPI with the `mpi` feature) and DDP's
/// gradient sums (the `ember-dist` crate).
pub use ember_dist as dist;
/// Models with Hugging Face configs and names, and generation (the `ember-models` crate).
pub use ember_models as models;
/// Layers, the parameter store and losses (the `ember-nn` crate).
pub use ember_nn as nn;
/// Optimizers, clipping and learning-rate schedules (the `ember-optim` crate).
pub use ember_optim as optim;
/// The training loop, data, metrics and checkpoints (the `ember-train` crate).
pub use ember_train as train;
/// Checkpoint I/O: safetensors and GGUF (the `ember-weights` crate).
pub use ember_weights as weights;
pub use ember_weights::{Checkpoint, GgufFile, save_safetensors};

/// The everyday names: `use ember::prelude::*`.
pub mod prelude {
    pub use crate::{
        AttentionOpts, Backward, ConvOpts, CrossEntropyOpts, DType, Device, ELLIPSIS, Error,
        Generator, Gradients, Ix, NEW_AXIS, PadMode, PoolOpts, Reduction, Result, Tensor,
        autocast::autocast, manual_seed, no_grad,
    };
    pub use ember_nn::{Module, VarBuilder, VarStore};
    pub use ember_optim::Optimizer;
}

/// The README's code blocks, compiled and run as doctests so they never rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The autograd guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/autograd.md")]
pub struct AutogradGuideDoctests;

/// The modules guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/modules.md")]
pub struct ModulesGuideDoctests;

/// The weights guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/weights.md")]
pub struct WeightsGuideDoctests;

/// The training guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/training.md")]
pub struct TrainingGuideDoctests;

/// The models guide's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/models.md")]
pub struct ModelsGuideDoctests;

/// The getting-started guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/getting-started.md")]
pub struct GettingStartedGuideDoctests;

/// The tensors guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/tensors.md")]
pub struct TensorsGuideDoctests;

/// The backends guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/backends.md")]
pub struct BackendsGuideDoctests;
