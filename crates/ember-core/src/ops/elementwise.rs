//! Elementwise ops outside the op tables: clamp, maximum and minimum, square, `where`,
//! masked fill and logical not. (Unary functions, arithmetic and comparisons are declared in
//! `unary.rs`, `binary.rs` and `compare.rs`.)

use super::binary::result_dtype;
use crate::CompareFn;
use crate::autograd::Op;
use crate::base::shape::{broadcast, broadcasts_to};
use crate::base::tables::Promote;
use crate::kernels::prim::{self, Prim};
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// Clamps to `[min, max]`; either bound may be `None`.
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Result<Tensor> {
        self.check_not_bool("clamp")?;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(Error::data(
                "clamp",
                format!("min {lo} is greater than max {hi}"),
            ));
        }
        let y = self.wrap(prim::clamp(self.prim(), min, max), self.shape());
        Ok(y.record(&[self], || Op::Clamp {
            x: self.clone(),
            min,
            max,
        }))
    }

    /// `x * x`.
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }

    /// Elementwise maximum, broadcasting; NaN wins, as `torch.maximum`.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum("maximum", rhs, CompareFn::Lt)
    }

    /// Elementwise minimum, broadcasting; NaN wins, as `torch.minimum`.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum("minimum", rhs, CompareFn::Gt)
    }

    fn extremum(&self, op: &'static str, rhs: &Tensor, take_rhs_when: CompareFn) -> Result<Tensor> {
        let dtype = result_dtype(op, self.dtype(), rhs.dtype(), Promote::Other)?;
        let (a, b, out) = self.broadcast_pair(op, rhs, dtype)?;
        let (a, b) = (prim::expand(a, &out_p(&out)), prim::expand(b, &out_p(&out)));
        let mut take_b = take_rhs_when.prim(a.clone(), b.clone());
        if dtype.is_float() {
            take_b = prim::mask_where(take_b, prim::is_nan(b.clone()), prim::is_nan(b.clone()));
        }
        let y = self.wrap(prim::mask_where(a, take_b, b), out);
        Ok(y.record(&[self, rhs], || Op::Extremum {
            a: self.clone(),
            b: rhs.clone(),
            max: take_rhs_when == CompareFn::Lt,
        }))
    }

    /// `torch.where(cond, on_true, on_false)`: broadcasts all three; `cond` must be Bool.
    /// Either branch may be a tensor or a number ([`Operand`]); a number takes the other
    /// branch's dtype (F32 when a float number meets an integer tensor), as PyTorch.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0, -3.0], &[3], Device::Cpu)?;
    /// let y = Tensor::where_(&x.gt_scalar(0.0)?, &x, 0.0)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.0, 2.0, 0.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn where_<'a>(
        cond: &Tensor,
        on_true: impl Into<Operand<'a>>,
        on_false: impl Into<Operand<'a>>,
    ) -> Result<Tensor> {
        let (t, f) = match (on_true.into(), on_false.into()) {
            (Operand::Tensor(a), b) => (a.clone(), b.beside(a)?),
            (a, Operand::Tensor(b)) => (a.beside(b)?, b.clone()),
            (a, b) => {
                let dtype = match (a, b) {
                    (Operand::Int(_), Operand::Int(_)) => DType::I64,
                    _ => DType::F32,
                };
                let like = Tensor::zeros(&[], dtype, cond.device())?;
                (a.beside(&like)?, b.beside(&like)?)
            }
        };
        Tensor::where_tensors(cond, &t, &f)
    }

    fn where_tensors(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        const OP: &str = "where";
        cond.check_mask(OP)?;
        cond.same_device(OP, on_true)?;
        cond.same_device(OP, on_false)?;
        let dtype = DType::promote(on_true.dtype(), on_false.dtype());
        let out = broadcast(OP, on_true.dims(), on_false.dims())?;
        let out = broadcast(OP, cond.dims(), &out)?;
        let pshape = out_p(&out);
        let fit = |t: &Tensor| -> Result<Prim> {
            Ok(prim::expand(
                t.to_dtype(dtype)?.prim_rank(out.len()),
                &pshape,
            ))
        };
        let c = prim::expand(cond.prim_rank(out.len()), &pshape);
        let y = prim::mask_where(fit(on_false)?, c, fit(on_true)?);
        Ok(cond
            .wrap(y, out)
            .record(&[on_true, on_false], || Op::Where {
                cond: cond.clone(),
                a: on_true.clone(),
                b: on_false.clone(),
            }))
    }

    /// Replaces elements where `mask` is true with `value`; `mask` broadcasts to `self`.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        const OP: &str = "masked_fill";
        mask.check_mask(OP)?;
        self.same_device(OP, mask)?;
        if !broadcasts_to(mask.dims(), self.dims()) {
            return Err(Error::Broadcast {
                op: OP,
                lhs: self.shape(),
                rhs: mask.shape(),
            });
        }
        let pshape = out_p(self.dims());
        let m = prim::expand(mask.prim_rank(self.rank()), &pshape);
        let y = self.wrap(prim::mask_fill(self.prim(), m, value), self.shape());
        Ok(y.record(&[self], || Op::MaskedFill {
            x: self.clone(),
            mask: mask.clone(),
        }))
    }

    fn check_mask(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::Bool {
            return Err(Error::dtype(
                op,
                &[self.dtype()],
                format!("the mask must be bool, got {}", self.dtype()),
            ));
        }
        Ok(())
    }

    fn check_not_bool(&self, op: &'static str) -> Result<()> {
        if self.dtype() == DType::Bool {
            return Err(Error::dtype(
                op,
                &[self.dtype()],
                "not defined for bool tensors; convert with to_dtype first",
            ));
        }
        Ok(())
    }
}

/// The primitive shape for a logical shape (rank 0 is `[1]`).
pub(crate) fn out_p(shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    }
}

/// One branch of [`Tensor::where_`]: a tensor or a number.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    /// A tensor that broadcasts with the condition.
    Tensor(&'a Tensor),
    /// A float number.
    Float(f64),
    /// An integer number.
    Int(i64),
}

impl Operand<'_> {
    /// The operand as a tensor used beside `like`: itself, or a 0-d tensor on `like`'s device
    /// in `like`'s dtype (F32 when a float number meets an integer tensor), as PyTorch types
    /// a number next to a tensor.
    pub(crate) fn beside(self, like: &Tensor) -> Result<Tensor> {
        match self {
            Operand::Tensor(t) => Ok(t.clone()),
            Operand::Float(v) if !like.dtype().is_float() => {
                Tensor::full(&[], v, DType::F32, like.device())
            }
            Operand::Float(v) => Tensor::full(&[], v, like.dtype(), like.device()),
            Operand::Int(v) => Tensor::full(&[], v as f64, like.dtype(), like.device()),
        }
    }
}

impl<'a> From<&'a Tensor> for Operand<'a> {
    fn from(t: &'a Tensor) -> Self {
        Operand::Tensor(t)
    }
}

impl From<f64> for Operand<'_> {
    fn from(v: f64) -> Self {
        Operand::Float(v)
    }
}

impl From<f32> for Operand<'_> {
    fn from(v: f32) -> Self {
        Operand::Float(v as f64)
    }
}

impl From<i64> for Operand<'_> {
    fn from(v: i64) -> Self {
        Operand::Int(v)
    }
}

impl From<i32> for Operand<'_> {
    fn from(v: i32) -> Self {
        Operand::Int(v as i64)
    }
}
