//! The `Tensor` methods of the unary table (`base/tables/unary.rs`): one per row, with its
//! rustdoc, and [`Tensor::unary`], which validates the dtype, calls the row's primitive and
//! records the op.

use crate::autograd::Op;
use crate::base::tables::Ints;
use crate::base::tables::unary::unary_table;
use crate::{DType, Error, Result, Tensor, UnaryFn};

macro_rules! unary_methods {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $ints:ident, $how:ident($($f:expr),+));
    )+) => {
        impl Tensor {
            $(
                $(#[doc = $doc])+
                pub fn $method(&self) -> Result<Tensor> {
                    self.unary(UnaryFn::$variant)
                }
            )+
        }
    };
}

unary_table!(unary_methods);

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
