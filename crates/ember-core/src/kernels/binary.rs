//! The primitives of the binary table (`base/tables/binary.rs`): tensor–tensor and
//! tensor–scalar arithmetic of validated primitives.

use burn_backend::ops::{FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::prim::{self, Prim};
use crate::BinaryFn;
use crate::base::tables::binary::binary_table;

macro_rules! binary_prims {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $promote:ident, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sints:ident, $sint:expr, $sfloat:expr);
    )+) => {
        impl BinaryFn {
            /// `a op b` of validated primitives (one dtype, equal ranks).
            pub(crate) fn prim(self, a: Prim, b: Prim) -> Prim {
                match self {
                    $(BinaryFn::$variant => prim::zip(a, b, $int, $float),)+
                }
            }

            /// `a op s` of a validated primitive.
            pub(crate) fn prim_scalar(self, a: Prim, s: f64) -> Prim {
                match self {
                    $(BinaryFn::$variant => prim::zip_scalar(a, s, $sint, $sfloat),)+
                }
            }
        }
    };
}

binary_table!(binary_prims);
