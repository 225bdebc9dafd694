//! The kernel layer: the only code that computes.
//!
//! `prim` calls burn's primitives (burn-flex on the CPU, burn-wgpu on GPUs); `cpu` holds
//! Ember's own CPU kernels. Every other module here is one kernel entry: a fused op's
//! forward and backward side by side, each choosing its implementation in that one place
//! (Ember's kernel where one applies, the composed definition everywhere else) and noting
//! the choice for [`trace_kernels`]. Code above this layer (ops, autograd rules, optimizers,
//! layers) calls entries and never tests for a device, a dtype or a storage layout.
//!
//! Inside, the layers point down too: `prim` and `trace` (the backend and the record of what
//! ran) ← `cpu` (kernels on storage; `cpu/isa.rs` alone asks the CPU what it runs) ← the
//! entries. The op tables' primitives are `unary`, `binary`, `compare` and `reduce`; the
//! fused families line up by name with `ops/` and `cpu/` (`norm`, `softmax`, `loss`,
//! `attention`, `rotary`, `activation`, `matmul`, `qlinear`, `optim`).

pub(crate) mod cpu;
pub(crate) mod prim;
mod trace;

pub(crate) mod accumulate;
pub(crate) mod activation;
pub(crate) mod append;
pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod cast;
pub(crate) mod compare;
pub(crate) mod embedding;
pub(crate) mod layout;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod optim;
pub(crate) mod qlinear;
pub(crate) mod reduce;
pub(crate) mod rotary;
pub(crate) mod softmax;
pub(crate) mod unary;

pub use cpu::amx::amx_peak;
pub use cpu::isa::cpu_kernels;
pub use trace::{Impl, KernelUse, trace_kernels};
