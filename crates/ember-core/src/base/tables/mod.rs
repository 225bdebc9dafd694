//! The op tables: one row per elementwise op or reduction, declared once.
//!
//! Each table is a macro holding its rows (`unary_table!`, `binary_table!`,
//! `compare_table!`, `reduce_table!`); each layer that derives something from the rows
//! invokes the table with a macro of its own, which receives every row:
//!
//! | layer | file | what it derives |
//! |---|---|---|
//! | base | `base/tables/X.rs` | the enum (`UnaryFn::Exp`), `ALL`, PyTorch's names, the integer policy |
//! | kernels | `kernels/X.rs` | the burn primitive each row names (`UnaryFn::prim`) |
//! | ops | `ops/X.rs` | the `Tensor` method with the row's rustdoc (`Tensor::exp`) |
//!
//! A row's primitive (`float(B::float_exp)`) is only tokens here: it is resolved and called in
//! the kernel layer. The backward rule of each row is the one other place it appears
//! (`autograd/rules.rs`, whose `match` over the enum does not compile without it).

pub(crate) mod binary;
pub(crate) mod compare;
pub(crate) mod reduce;
pub(crate) mod unary;

pub use binary::BinaryFn;
pub(crate) use binary::Promote;
pub use compare::CompareFn;
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
