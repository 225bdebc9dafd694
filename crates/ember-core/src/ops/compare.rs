//! Elementwise comparisons (tensor–tensor with broadcasting, and tensor–scalar), declared once
//! in the table below. They produce Bool tensors and have no gradient.

use burn_backend::ops::{BoolTensorOps, FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use crate::kernels::prim;
use crate::{DType, Result, Tensor};

macro_rules! compare_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $bool:expr, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sint:expr, $sfloat:expr);
    )+) => {
        /// An elementwise comparison, as listed in `ops/compare.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CompareFn {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl CompareFn {
            /// Every comparison, in table order.
            pub const ALL: &'static [CompareFn] = &[$(CompareFn::$variant),+];

            /// PyTorch's name of the tensor–tensor comparison: `"eq"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(CompareFn::$variant => $name,)+
                }
            }

            /// The name of the tensor–scalar comparison: `"eq_scalar"`, ...
            pub fn scalar_name(self) -> &'static str {
                match self {
                    $(CompareFn::$variant => $sname,)+
                }
            }

            /// `a op b` of validated primitives of one dtype and equal ranks, as Bool.
            pub(crate) fn prim(self, a: prim::Prim, b: prim::Prim) -> prim::Prim {
                match self {
                    $(CompareFn::$variant => prim::compare(a, b, $bool, $int, $float),)+
                }
            }

            /// `a op s` of a validated integer or float primitive, as Bool.
            fn prim_scalar(self, a: prim::Prim, s: f64) -> prim::Prim {
                match self {
                    $(CompareFn::$variant => prim::compare_scalar(a, s, $sint, $sfloat),)+
                }
            }
        }

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

compare_ops! {
    /// `a == b`.
    Eq => eq("eq", Some(B::bool_equal), B::int_equal, B::float_equal),
        eq_scalar("eq_scalar", B::int_equal_elem, B::float_equal_elem);
    /// `a != b`.
    Ne => ne("ne", Some(B::bool_not_equal), B::int_not_equal, B::float_not_equal),
        ne_scalar("ne_scalar", B::int_not_equal_elem, B::float_not_equal_elem);
    /// `a < b`.
    Lt => lt("lt", None, B::int_lower, B::float_lower),
        lt_scalar("lt_scalar", B::int_lower_elem, B::float_lower_elem);
    /// `a <= b`.
    Le => le("le", None, B::int_lower_equal, B::float_lower_equal),
        le_scalar("le_scalar", B::int_lower_equal_elem, B::float_lower_equal_elem);
    /// `a > b`.
    Gt => gt("gt", None, B::int_greater, B::float_greater),
        gt_scalar("gt_scalar", B::int_greater_elem, B::float_greater_elem);
    /// `a >= b`.
    Ge => ge("ge", None, B::int_greater_equal, B::float_greater_equal),
        ge_scalar("ge_scalar", B::int_greater_equal_elem, B::float_greater_equal_elem);
}

impl CompareFn {
    /// The comparison with this tensor–tensor name (`"lt"`).
    pub fn from_name(name: &str) -> Option<CompareFn> {
        CompareFn::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The comparison with this tensor–scalar name (`"lt_scalar"`).
    pub fn from_scalar_name(name: &str) -> Option<CompareFn> {
        CompareFn::ALL
            .iter()
            .copied()
            .find(|f| f.scalar_name() == name)
    }
}

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
