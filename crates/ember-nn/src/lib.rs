//! Layers whose parameters carry Hugging Face's names, so checkpoints load with no renaming.
//!
//! A [`VarStore`] owns every parameter under a hierarchical name; a [`VarBuilder`] scoped with
//! [`VarBuilder::pp`] creates them (`vb.pp("model.layers.0").pp("self_attn")`). Modules keep
//! [`Param`] handles and read the current value on each forward, so an optimizer can update
//! the store in place.
//!
//! ```
//! use ember_nn::{Linear, Module, VarBuilder, VarStore};
//! use ember_core::{DType, Device, Tensor};
//!
//! let store = VarStore::new(Device::Cpu, DType::F32);
//! let vb = VarBuilder::new(&store);
//! let proj = Linear::new(vb.pp("proj"), 4, 3, true)?;
//! let y = proj.forward(&Tensor::ones(&[2, 4], DType::F32, Device::Cpu)?)?; // (2, 3)
//! assert_eq!(y.dims(), &[2, 3]);
//! assert_eq!(store.names(), vec!["proj.bias", "proj.weight"]);
//! # Ok::<(), ember_core::Error>(())
//! ```
#![warn(missing_docs)]

mod attention;
mod block;
mod builder;
mod checkpointing;
mod conv;
mod layers;
pub mod lora;
pub mod loss;
mod normalization;
mod param;
mod source;
mod store;

pub use attention::{
    AttentionConfig, CachedAttention, KvCache, MultiHeadAttention, Norm, QkvProjection,
    RotaryEmbedding, attend_cached,
};
pub use block::{Block, BlockConfig, FeedForward, MlpKind, NormKind};
pub use builder::VarBuilder;
pub use checkpointing::Checkpointing;
pub use conv::{
    AdaptiveAvgPool, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool, AvgPool1d, AvgPool2d, Conv,
    Conv1d, Conv2d, MaxPool, MaxPool1d, MaxPool2d,
};
pub use layers::{
    Activation, Conv1D, Dropout, Embedding, GatedMlp, LayerNorm, Linear, Mlp, Projection, RmsNorm,
    linear_with,
};
pub use normalization::{BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm};
pub use param::Adapter;
pub use source::{CheckpointSource, PlanLimits, WeightSource, build_checked, build_from};
pub use store::{Init, LoadOptions, LoadReport, Param, QuantizedWeight, VarStore, WeightRole};

use ember_core::{Result, Tensor};

/// A layer: a function of one tensor with parameters in a [`VarStore`].
pub trait Module {
    /// Applies the layer.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}
