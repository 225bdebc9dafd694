//! The primitives of the comparison table (`base/tables/compare.rs`): comparisons of
//! validated primitives, as Bool.

use burn_backend::ops::{BoolTensorOps, FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::prim::{self, Prim};
use crate::CompareFn;
use crate::base::tables::compare::compare_table;

macro_rules! compare_prims {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $bool:expr, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sint:expr, $sfloat:expr);
    )+) => {
        impl CompareFn {
            /// `a op b` of validated primitives of one dtype and equal ranks, as Bool.
            pub(crate) fn prim(self, a: Prim, b: Prim) -> Prim {
                match self {
                    $(CompareFn::$variant => prim::compare(a, b, $bool, $int, $float),)+
                }
            }

            /// `a op s` of a validated integer or float primitive, as Bool.
            pub(crate) fn prim_scalar(self, a: Prim, s: f64) -> Prim {
                match self {
                    $(CompareFn::$variant => prim::compare_scalar(a, s, $sint, $sfloat),)+
                }
            }
        }
    };
}

compare_table!(compare_prims);
