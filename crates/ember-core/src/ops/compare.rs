//! The `Tensor` methods of the comparison table (`base/tables/compare.rs`): elementwise
//! comparisons with broadcasting or against a scalar, as Bool, without gradients.

use crate::base::tables::compare::compare_table;
use crate::{CompareFn, DType, Result, Tensor};

macro_rules! compare_methods {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $bool:expr, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sint:expr, $sfloat:expr);
    )+) => {
        impl Tensor {
            $(
                $(#[doc = $doc])+
                #[doc = "Elementwise with broadcasting, as Bool."]
                pub fn $method(&self, rhs: &Tensor) -> Result<Tensor> {
                    self.compare(CompareFn::$variant, rhs)
                }

                $(#[doc = $doc])+
                #[doc = "Elementwise against a scalar, as Bool."]
                pub fn $smethod(&self, s: f64) -> Result<Tensor> {
                    self.compare_scalar(CompareFn::$variant, s)
                }
            )+
        }
    };
}

compare_table!(compare_methods);

impl Tensor {
    /// `self op rhs` elementwise with broadcasting, as Bool: `a.compare(CompareFn::Lt, &b)` is
    /// `a.lt(&b)`. Bools are ordered as integers.
    pub fn compare(&self, f: CompareFn, rhs: &Tensor) -> Result<Tensor> {
        let mut dtype = DType::promote(self.dtype(), rhs.dtype());
        if dtype == DType::Bool && !matches!(f, CompareFn::Eq | CompareFn::Ne) {
            dtype = DType::I64;
        }
        let (a, b, out) = self.broadcast_pair(f.name(), rhs, dtype)?;
        let y = self.wrap(f.prim(a, b), out);
        let x = if self.is_tracked() { self } else { rhs };
        Ok(y.record_nondiff(f.name(), x))
    }

    /// `self op s` elementwise, as Bool: `a.compare_scalar(CompareFn::Gt, 0.0)` is
    /// `a.gt_scalar(0.0)`.
    pub fn compare_scalar(&self, f: CompareFn, s: f64) -> Result<Tensor> {
        let x = match self.dtype() {
            DType::Bool => self.to_dtype(DType::I64)?,
            DType::I64 if s.fract() != 0.0 => self.to_dtype(DType::F32)?,
            _ => self.clone(),
        };
        let y = self.wrap(f.prim_scalar(x.prim(), s), self.shape());
        Ok(y.record_nondiff(f.name(), self))
    }
}
