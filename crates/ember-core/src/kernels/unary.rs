//! The primitives of the unary table (`base/tables/unary.rs`): each row's burn primitive or
//! kernel entry, applied to a validated primitive.

use burn_backend::ops::{ActivationOps, FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::activation;
use super::prim::{self, Prim};
use crate::DType;
use crate::UnaryFn;
use crate::base::tables::unary::unary_table;

macro_rules! unary_prims {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $ints:ident, $how:ident($($f:expr),+));
    )+) => {
        impl UnaryFn {
            /// The function of a validated primitive (float, or I64 for `Ints::Keep` rows).
            pub(crate) fn prim(self, p: Prim) -> Prim {
                match self {
                    $(UnaryFn::$variant => unary_prims!(@how p, $how($($f),+)),)+
                }
            }
        }
    };
    (@how $p:ident, float($f:expr)) => { prim::map($p, $f, $f) };
    (@how $p:ident, prim($int:expr, $float:expr)) => { prim::map($p, $int, $float) };
    (@how $p:ident, entry($f:expr)) => { $f($p) };
}

unary_table!(unary_prims);

/// Integers are already whole: `floor`, `ceil`, `round` and `trunc` leave them.
fn int_same(t: burn_dispatch::DispatchTensor) -> burn_dispatch::DispatchTensor {
    t
}

fn rsqrt(p: Prim) -> Prim {
    UnaryFn::Recip.prim(UnaryFn::Sqrt.prim(p))
}

fn relu(p: Prim) -> Prim {
    if p.dtype() == DType::I64 {
        prim::clamp(p, Some(0.0), None)
    } else {
        prim::map(p, B::relu, B::relu)
    }
}
