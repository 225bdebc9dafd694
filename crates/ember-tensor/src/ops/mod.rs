//! Every op's forward, grouped by family. Each op is defined once, as a `Tensor` method.

pub(crate) mod elementwise;
pub mod fast;
pub(crate) mod fused;
mod index;
mod layout;
mod matmul;
pub(crate) mod reduce;
