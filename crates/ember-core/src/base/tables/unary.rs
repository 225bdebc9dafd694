//! Unary elementwise ops, declared once in the table below.
//!
//! Each row is one op: its [`UnaryFn`] variant and doc, the `Tensor` method and PyTorch name,
//! what happens to integer and bool inputs (`ToFloat` or `Keep`), and how the kernel layer
//! computes it: a burn primitive (`float` for floats only, `prim` for integers and floats) or
//! a kernel entry (`entry`).

use super::Ints;

/// The rows of the unary table, handed to `$derive!` (see the module docs of `tables`).
macro_rules! unary_table {
    ($derive:ident) => {
        $derive! {
            /// `-x`.
            Neg => neg("neg", Keep, prim(B::int_neg, B::float_neg));
            /// `|x|`.
            Abs => abs("abs", Keep, prim(B::int_abs, B::float_abs));
            /// `e^x`.
            Exp => exp("exp", ToFloat, float(B::float_exp));
            /// The natural logarithm.
            Log => log("log", ToFloat, float(B::float_log));
            /// The square root.
            Sqrt => sqrt("sqrt", ToFloat, float(B::float_sqrt));
            /// `1 / √x`.
            Rsqrt => rsqrt("rsqrt", ToFloat, entry(rsqrt));
            /// The sine.
            Sin => sin("sin", ToFloat, float(B::float_sin));
            /// The cosine.
            Cos => cos("cos", ToFloat, float(B::float_cos));
            /// The hyperbolic tangent.
            Tanh => tanh("tanh", ToFloat, float(B::float_tanh));
            /// The logistic sigmoid `1 / (1 + e^-x)`.
            Sigmoid => sigmoid("sigmoid", ToFloat, float(B::sigmoid));
            /// The error function.
            Erf => erf("erf", ToFloat, float(B::float_erf));
            /// `max(x, 0)` (I64 stays I64).
            Relu => relu("relu", Keep, entry(relu));
            /// GELU, exact (erf) form: `x/2 · (1 + erf(x/√2))`, as `torch.nn.functional.gelu`.
            Gelu => gelu("gelu", ToFloat, entry(activation::gelu));
            /// GELU, tanh approximation (`approximate="tanh"`, HF's `gelu_new`):
            /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
            GeluTanh => gelu_tanh("gelu_tanh", ToFloat, entry(activation::gelu_tanh));
            /// SiLU (swish): `x · sigmoid(x)`.
            Silu => silu("silu", ToFloat, entry(activation::silu));
            /// `1 / x`.
            Recip => recip("recip", ToFloat, float(B::float_recip));
            /// The largest integer not above `x` (integers stay as they are).
            Floor => floor("floor", Keep, prim(int_same, B::float_floor));
            /// The smallest integer not below `x` (integers stay as they are).
            Ceil => ceil("ceil", Keep, prim(int_same, B::float_ceil));
            /// The nearest integer, halves to even, as `torch.round` (integers stay as they are).
            Round => round("round", Keep, prim(int_same, B::float_round));
            /// The integer part, towards zero (integers stay as they are).
            Trunc => trunc("trunc", Keep, prim(int_same, B::float_trunc));
            /// -1, 0 or 1 by the sign of `x` (`sign(0) = 0`).
            Sign => sign("sign", Keep, prim(B::int_sign, B::float_sign));
        }
    };
}
pub(crate) use unary_table;

macro_rules! unary_enum {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $ints:ident, $how:ident($($f:expr),+));
    )+) => {
        /// A unary elementwise function with its own backward rule, as listed in
        /// `base/tables/unary.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum UnaryFn {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl UnaryFn {
            /// Every unary function, in table order.
            pub const ALL: &'static [UnaryFn] = &[$(UnaryFn::$variant),+];

            /// PyTorch's name: `"exp"`, `"gelu_tanh"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryFn::$variant => $name,)+
                }
            }

            /// What the op does with integer and bool inputs.
            pub(crate) fn ints(self) -> Ints {
                match self {
                    $(UnaryFn::$variant => Ints::$ints,)+
                }
            }
        }
    };
}

unary_table!(unary_enum);

impl UnaryFn {
    /// The function with PyTorch's name `name`.
    pub fn from_name(name: &str) -> Option<UnaryFn> {
        UnaryFn::ALL.iter().copied().find(|f| f.name() == name)
    }
}
