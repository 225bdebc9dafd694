//! Every op's forward, grouped by family. Each op is defined once, as a `Tensor` method.

pub(crate) mod elementwise;
mod index;
mod layout;
mod matmul;
pub(crate) mod reduce;
