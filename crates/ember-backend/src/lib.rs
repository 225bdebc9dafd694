//! Ember's lowest layer: devices, dtypes, the error type, and the primitive op set mapped
//! onto burn 0.22's kernels through `burn-dispatch` (burn-flex on CPU, burn-wgpu behind the
//! `wgpu` feature).
//!
//! Users reach this crate through `ember`; `ember-tensor` is its only direct client.
#![warn(missing_docs)]

pub mod cpu;
mod device;
mod dtype;
mod error;
mod malloc;
pub mod prim;

pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use half::{bf16, f16};
