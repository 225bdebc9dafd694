//! Binary arithmetic with broadcasting, and with a scalar, declared once in the table below.
//!
//! Each row is one op: its [`BinaryFn`] variant and doc, the tensor–tensor method and name
//! with its dtype promotion and burn primitives, and the tensor–scalar method and name with
//! its primitives. From the table come the enum, the methods, the names and the primitive
//! mapping; the backward rule is in `autograd/rules.rs`.

use burn_backend::ops::{FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::Ints;
use crate::autograd::Op;
use crate::kernels::prim::{self, Prim};
use crate::shape::broadcast;
use crate::{DType, Error, Result, Tensor};

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

macro_rules! binary_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $promote:ident, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sints:ident, $sint:expr, $sfloat:expr);
    )+) => {
        /// Binary arithmetic with a backward rule (tensor–tensor or tensor–scalar), as listed
        /// in `ops/binary.rs`.
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

            pub(crate) fn promote(self) -> Promote {
                match self {
                    $(BinaryFn::$variant => Promote::$promote,)+
                }
            }

            fn scalar_ints(self) -> Ints {
                match self {
                    $(BinaryFn::$variant => Ints::$sints,)+
                }
            }

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

        impl Tensor {
            $(
                $(#[doc = $doc])+
                #[doc = "Broadcasts, as PyTorch."]
                pub fn $method(&self, rhs: &Tensor) -> Result<Tensor> {
                    self.binary(BinaryFn::$variant, rhs)
                }

                $(#[doc = $doc])+
                #[doc = "With a scalar right operand."]
                pub fn $smethod(&self, s: f64) -> Result<Tensor> {
                    self.binary_scalar(BinaryFn::$variant, s)
                }
            )+
        }
    };
}

binary_ops! {
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

/// The dtype a binary op computes in, after PyTorch's promotion.
pub(crate) fn result_dtype(op: &'static str, a: DType, b: DType, p: Promote) -> Result<DType> {
    let d = DType::promote(a, b);
    if d == DType::Bool {
        return Err(Error::dtype(
            op,
            &[a, b],
            "bool tensors do not support arithmetic; convert with to_dtype first",
        ));
    }
    Ok(match (p, d) {
        (Promote::Div, DType::I64) => DType::F32,
        _ => d,
    })
}

/// The dtype of `x op s` for a tensor of dtype `a`: an integral scalar keeps integer tensors
/// integral, a fractional one makes them F32.
fn scalar_dtype(op: &'static str, a: DType, s: f64, p: Promote) -> Result<DType> {
    let integral = s.fract() == 0.0 && s.is_finite();
    let d = match a {
        DType::Bool | DType::I64 if integral => DType::I64,
        DType::Bool | DType::I64 => DType::F32,
        f => f,
    };
    result_dtype(op, d, d, p)
}

impl Tensor {
    /// Both operands promoted to `dtype`, reshaped to the broadcast rank.
    pub(crate) fn broadcast_pair(
        &self,
        op: &'static str,
        rhs: &Tensor,
        dtype: DType,
    ) -> Result<(Prim, Prim, Vec<usize>)> {
        self.same_device(op, rhs)?;
        let out = broadcast(op, self.dims(), rhs.dims())?;
        let a = self.to_dtype(dtype)?.prim_rank(out.len());
        let b = rhs.to_dtype(dtype)?.prim_rank(out.len());
        Ok((a, b, out))
    }

    /// `self op rhs` with broadcasting: `a.binary(BinaryFn::Add, &b)` is `a.add(&b)`.
    pub fn binary(&self, f: BinaryFn, rhs: &Tensor) -> Result<Tensor> {
        let dtype = result_dtype(f.name(), self.dtype(), rhs.dtype(), f.promote())?;
        let (a, b, out) = self.broadcast_pair(f.name(), rhs, dtype)?;
        let y = self.wrap(f.prim(a, b), out);
        // Record only what the rule reads: add/sub need shapes; a product or quotient by an
        // untracked operand does not need the other one's data.
        Ok(y.record(&[self, rhs], || {
            let (a, b) = match f {
                BinaryFn::Add | BinaryFn::Sub => (self.graph_handle(), rhs.graph_handle()),
                BinaryFn::Mul if !rhs.is_tracked() => (self.graph_handle(), rhs.clone()),
                BinaryFn::Mul if !self.is_tracked() => (self.clone(), rhs.graph_handle()),
                BinaryFn::Div if !rhs.is_tracked() => (self.graph_handle(), rhs.clone()),
                _ => (self.clone(), rhs.clone()),
            };
            Op::Binary(f, a, b)
        }))
    }

    /// `self op s` with a scalar: `a.binary_scalar(BinaryFn::Mul, 2.0)` is `a.mul_scalar(2.0)`.
    pub fn binary_scalar(&self, f: BinaryFn, s: f64) -> Result<Tensor> {
        let x = match f.scalar_ints() {
            Ints::ToFloat if !self.dtype().is_float() => self.to_dtype(DType::F32)?,
            _ => self.clone(),
        };
        let dtype = scalar_dtype(f.scalar_name(), x.dtype(), s, f.promote())?;
        let x = x.to_dtype(dtype)?;
        let y = x.wrap(f.prim_scalar(x.prim(), s), x.shape());
        // Only `powf`'s rule reads its input's values.
        Ok(y.record(&[&x], || {
            let kept = match f {
                BinaryFn::Pow => x.clone(),
                _ => x.graph_handle(),
            };
            Op::Scalar(f, kept, s)
        }))
    }
}
