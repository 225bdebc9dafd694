//! Binary arithmetic, tensor–tensor (with broadcasting) and tensor–scalar, declared once in
//! the table below.
//!
//! Each row is one op: its [`BinaryFn`] variant and doc; the tensor–tensor method and name,
//! its dtype promotion and burn primitives (integer, float); the tensor–scalar method and
//! name, what it does with integer tensors, and its primitives.

use super::Ints;

/// The rows of the binary table, handed to `$derive!` (see the module docs of `tables`).
macro_rules! binary_table {
    ($derive:ident) => {
        $derive! {
            /// `a + b`.
            Add => add("add", Ring, B::int_add, B::float_add),
                add_scalar("add_scalar", Keep, B::int_add_scalar, B::float_add_scalar);
            /// `a - b`.
            Sub => sub("sub", Ring, B::int_sub, B::float_sub),
                sub_scalar("sub_scalar", Keep, B::int_sub_scalar, B::float_sub_scalar);
            /// `a * b`.
            Mul => mul("mul", Ring, B::int_mul, B::float_mul),
                mul_scalar("mul_scalar", Keep, B::int_mul_scalar, B::float_mul_scalar);
            /// `a / b`: true division (integer operands give F32, as PyTorch).
            Div => div("div", Div, B::int_div, B::float_div),
                div_scalar("div_scalar", Keep, B::int_div_scalar, B::float_div_scalar);
            /// `a ^ b` (the scalar form `powf` computes in floats).
            Pow => pow("pow", Other, B::int_powi, B::float_powf),
                powf("powf", ToFloat, B::int_powi_scalar, B::float_powf_scalar);
        }
    };
}
pub(crate) use binary_table;

/// How a binary op promotes dtypes (after PyTorch's promotion of the two operands).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Promote {
    /// add, sub, mul: ints stay ints.
    Ring,
    /// true division: ints become F32.
    Div,
    /// pow, maximum, minimum: as ring.
    Other,
}

macro_rules! binary_enum {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $promote:ident, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sints:ident, $sint:expr, $sfloat:expr);
    )+) => {
        /// Binary arithmetic with a backward rule (tensor–tensor or tensor–scalar), as listed
        /// in `base/tables/binary.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BinaryFn {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl BinaryFn {
            /// Every binary function, in table order.
            pub const ALL: &'static [BinaryFn] = &[$(BinaryFn::$variant),+];

            /// PyTorch's name of the tensor–tensor op: `"add"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(BinaryFn::$variant => $name,)+
                }
            }

            /// The name of the tensor–scalar op: `"add_scalar"`, ..., `"powf"`.
            pub fn scalar_name(self) -> &'static str {
                match self {
                    $(BinaryFn::$variant => $sname,)+
                }
            }

            /// How the tensor–tensor op promotes dtypes.
            pub(crate) fn promote(self) -> Promote {
                match self {
                    $(BinaryFn::$variant => Promote::$promote,)+
                }
            }

            /// What the tensor–scalar op does with integer and bool tensors.
            pub(crate) fn scalar_ints(self) -> Ints {
                match self {
                    $(BinaryFn::$variant => Ints::$sints,)+
                }
            }
        }
    };
}

binary_table!(binary_enum);

impl BinaryFn {
    /// The function with this tensor–tensor name (`"add"`).
    pub fn from_name(name: &str) -> Option<BinaryFn> {
        BinaryFn::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The function with this tensor–scalar name (`"add_scalar"`, `"powf"`).
    pub fn from_scalar_name(name: &str) -> Option<BinaryFn> {
        BinaryFn::ALL
            .iter()
            .copied()
            .find(|f| f.scalar_name() == name)
    }
}
