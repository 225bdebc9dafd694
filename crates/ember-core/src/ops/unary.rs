//! Unary elementwise ops, declared once in the table below.
//!
//! Each row is one op: its [`UnaryFn`] variant and doc, the `Tensor` method and PyTorch name,
//! what happens to integer and bool inputs, and how it is computed: a burn primitive (`float`
//! for floats only, `prim` for integers and floats) or a kernel entry. From the table come the
//! enum, the methods, the names used by messages, gradcheck and the fixture tests, and the
//! primitive mapping. An op's backward rule is the one other place it appears
//! (`autograd/rules.rs`, whose `match` over [`UnaryFn`] does not compile without it).

use burn_backend::ops::{ActivationOps, FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::Ints;
use crate::autograd::Op;
use crate::kernels::{self, prim::Prim};
use crate::{DType, Error, Result, Tensor};

macro_rules! unary_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $ints:ident, $how:ident($($f:expr),+));
    )+) => {
        /// A unary elementwise function with its own backward rule, as listed in
        /// `ops/unary.rs`.
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

            fn ints(self) -> Ints {
                match self {
                    $(UnaryFn::$variant => Ints::$ints,)+
                }
            }

            /// The function of a validated primitive (float, or I64 for `Ints::Keep` rows).
            pub(crate) fn prim(self, p: Prim) -> Prim {
                match self {
                    $(UnaryFn::$variant => unary_ops!(@how p, $how($($f),+)),)+
                }
            }
        }

        impl Tensor {
            $(
                $(#[doc = $doc])+
                pub fn $method(&self) -> Result<Tensor> {
                    self.unary(UnaryFn::$variant)
                }
            )+
        }
    };
    (@how $p:ident, float($f:expr)) => { kernels::prim::map($p, $f, $f) };
    (@how $p:ident, prim($int:expr, $float:expr)) => { kernels::prim::map($p, $int, $float) };
    (@how $p:ident, entry($f:expr)) => { $f($p) };
}

unary_ops! {
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
    Gelu => gelu("gelu", ToFloat, entry(kernels::activation::gelu));
    /// GELU, tanh approximation (`approximate="tanh"`, HF's `gelu_new`):
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
    GeluTanh => gelu_tanh("gelu_tanh", ToFloat, entry(kernels::activation::gelu_tanh));
    /// SiLU (swish): `x · sigmoid(x)`.
    Silu => silu("silu", ToFloat, entry(kernels::activation::silu));
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

/// Integers are already whole: `floor`, `ceil`, `round` and `trunc` leave them.
fn int_same(t: burn_dispatch::DispatchTensor) -> burn_dispatch::DispatchTensor {
    t
}

fn rsqrt(p: Prim) -> Prim {
    UnaryFn::Recip.prim(UnaryFn::Sqrt.prim(p))
}

fn relu(p: Prim) -> Prim {
    if p.dtype() == DType::I64 {
        kernels::prim::clamp(p, Some(0.0), None)
    } else {
        kernels::prim::map(p, B::relu, B::relu)
    }
}

impl UnaryFn {
    /// The function with PyTorch's name `name`.
    pub fn from_name(name: &str) -> Option<UnaryFn> {
        UnaryFn::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl Tensor {
    /// Applies a unary function: `t.unary(UnaryFn::Exp)` is `t.exp()`.
    pub fn unary(&self, f: UnaryFn) -> Result<Tensor> {
        let x = match (f.ints(), self.dtype()) {
            (Ints::Keep, DType::Bool) => {
                return Err(Error::dtype(
                    f.name(),
                    &[DType::Bool],
                    "not defined for bool tensors; convert with to_dtype first",
                ));
            }
            (Ints::Keep, _) => self.clone(),
            (Ints::ToFloat, d) if d.is_float() => self.clone(),
            (Ints::ToFloat, _) => self.to_dtype(DType::F32)?,
        };
        let y = x.wrap(f.prim(x.prim()), x.shape());
        Ok(y.record(&[&x], || Op::Unary(f, x.clone())))
    }
}
