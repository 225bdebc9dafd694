//! Every op's forward, grouped by family: validation, dtype promotion, broadcasting, the call
//! into the kernel layer, and the record for autograd. Each op is defined once, as a `Tensor`
//! method; the elementwise families and reductions are declared in tables (`unary`, `binary`,
//! `compare`, `reduce`) from which their enums, methods, names and primitives are derived.

mod arrange;
pub(crate) mod binary;
pub(crate) mod compare;
mod conv;
mod einsum;
pub(crate) mod elementwise;
pub(crate) mod fused;
mod index;
mod indexing;
mod inplace;
mod layout;
mod logical;
mod matmul;
mod pool;
pub(crate) mod reduce;
pub(crate) mod scan;
mod select;
mod sort;
pub(crate) mod unary;

pub use arrange::PadMode;
pub use binary::BinaryFn;
pub use compare::CompareFn;
pub use conv::ConvOpts;
pub use elementwise::Operand;
pub use indexing::{ELLIPSIS, Indexer, Ix, NEW_AXIS};
pub use pool::PoolOpts;
pub use reduce::ReduceFn;
pub use unary::UnaryFn;

/// What an op does with integer and bool inputs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ints {
    /// Converted to F32 first, as PyTorch does for transcendental functions.
    ToFloat,
    /// I64 stays I64 (bool is refused or converted by the op).
    Keep,
}
