//! The `Tensor` methods of the binary table (`base/tables/binary.rs`), tensor–tensor with
//! broadcasting and tensor–scalar, and the dtype promotion they share.

use crate::autograd::Op;
use crate::base::shape::broadcast;
use crate::base::tables::binary::binary_table;
use crate::base::tables::{Ints, Promote};
use crate::kernels::prim::Prim;
use crate::{BinaryFn, DType, Error, Result, Tensor};

macro_rules! binary_methods {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $promote:ident, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sints:ident, $sint:expr, $sfloat:expr);
    )+) => {
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

binary_table!(binary_methods);

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
