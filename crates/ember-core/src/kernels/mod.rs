//! The kernel layer: the only code that computes.
//!
//! `prim` calls burn's primitives (burn-flex on the CPU, burn-wgpu on GPUs); `cpu` holds
//! Ember's own f32 CPU kernels. Every other module here is one kernel entry: a fused op's
//! forward and backward side by side, each choosing its implementation in that one place
//! (Ember's kernel where one applies, the composed definition everywhere else) and noting
//! the choice for [`trace_kernels`]. Code above this layer (ops, autograd rules, optimizers,
//! layers) calls entries and never tests for a device, a dtype or a storage layout.

pub(crate) mod cpu;
pub(crate) mod prim;
mod trace;

pub(crate) mod accumulate;
pub(crate) mod activation;
pub(crate) mod adamw;
pub(crate) mod append;
pub(crate) mod attention;
pub(crate) mod cast;
pub(crate) mod cross_entropy;
pub(crate) mod embedding;
pub(crate) mod linear_cross_entropy;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod qlinear;
pub(crate) mod reduce;
pub(crate) mod rotary;
pub(crate) mod softmax;

pub use trace::{Impl, KernelUse, trace_kernels};
