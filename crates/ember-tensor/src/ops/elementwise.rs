//! Elementwise ops: unary functions, binary arithmetic with broadcasting, comparisons, select.

use std::f64::consts::FRAC_1_SQRT_2;

use ember_backend::prim::{self, Binary, Compare, Prim, Unary};
use ember_backend::{DType, Error, Result};

use crate::graph::{BinaryFn, Op, UnaryFn};
use crate::shape::{broadcast, broadcasts_to};
use crate::tensor::Tensor;

/// Which family of binary op, for dtype promotion.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arith {
    /// add, sub, mul: ints stay ints.
    Ring,
    /// true division: ints become F32.
    Div,
    /// pow, maximum, minimum: as ring, bools refused.
    Other,
}

fn arith_dtype(op: &'static str, a: DType, b: DType, kind: Arith) -> Result<DType> {
    let d = DType::promote(a, b);
    if d == DType::Bool {
        return Err(Error::dtype(
            op,
            "bool tensors do not support arithmetic; convert with to_dtype first",
        ));
    }
    Ok(match (kind, d) {
        (Arith::Div, DType::I64) => DType::F32,
        _ => d,
    })
}

fn scalar_dtype(op: &'static str, a: DType, s: f64, kind: Arith) -> Result<DType> {
    let integral = s.fract() == 0.0 && s.is_finite();
    let b = if integral { DType::I64 } else { DType::F32 };
    let d = match a {
        DType::Bool => b,
        DType::I64 => b,
        f => f,
    };
    arith_dtype(op, d, d, kind)
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

    fn binary(&self, op: &'static str, rhs: &Tensor, f: BinaryFn, kind: Arith) -> Result<Tensor> {
        let dtype = arith_dtype(op, self.dtype(), rhs.dtype(), kind)?;
        let (a, b, out) = self.broadcast_pair(op, rhs, dtype)?;
        let y = self.wrap(prim::binary(prim_binary(f), a, b), out);
        Ok(y.record(&[self, rhs], || Op::Binary(f, self.clone(), rhs.clone())))
    }

    fn binary_scalar(&self, op: &'static str, s: f64, f: BinaryFn, kind: Arith) -> Result<Tensor> {
        let dtype = scalar_dtype(op, self.dtype(), s, kind)?;
        let x = self.to_dtype(dtype)?;
        let y = self.wrap(
            prim::binary_scalar(prim_binary(f), x.prim(), s),
            self.shape(),
        );
        Ok(y.record(&[&x], || Op::Scalar(f, x.clone(), s)))
    }

    /// A float version of this tensor: ints and bools become F32, as PyTorch does for
    /// transcendental functions.
    fn floated(&self) -> Result<Tensor> {
        if self.dtype().is_float() {
            Ok(self.clone())
        } else {
            self.to_dtype(DType::F32)
        }
    }

    fn unary(&self, u: Unary, f: UnaryFn) -> Result<Tensor> {
        let x = self.floated()?;
        Ok(self
            .wrap(prim::unary(u, x.prim()), self.shape())
            .recorded_unary(f, &x))
    }

    fn recorded_unary(self, f: UnaryFn, x: &Tensor) -> Tensor {
        self.record(&[x], || Op::Unary(f, x.clone()))
    }

    /// `-x`.
    pub fn neg(&self) -> Result<Tensor> {
        self.check_not_bool("neg")?;
        let y = self.wrap(prim::unary(Unary::Neg, self.prim()), self.shape());
        Ok(y.recorded_unary(UnaryFn::Neg, self))
    }

    /// `|x|`.
    pub fn abs(&self) -> Result<Tensor> {
        self.check_not_bool("abs")?;
        let y = self.wrap(prim::unary(Unary::Abs, self.prim()), self.shape());
        Ok(y.recorded_unary(UnaryFn::Abs, self))
    }

    /// `e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(Unary::Exp, UnaryFn::Exp)
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(Unary::Log, UnaryFn::Log)
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(Unary::Sqrt, UnaryFn::Sqrt)
    }

    /// `1 / sqrt(x)`.
    pub fn rsqrt(&self) -> Result<Tensor> {
        let x = self.floated()?;
        let s = prim::unary(Unary::Sqrt, x.prim());
        let y = self.wrap(prim::unary(Unary::Recip, s), self.shape());
        Ok(y.recorded_unary(UnaryFn::Rsqrt, &x))
    }

    /// Sine.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(Unary::Sin, UnaryFn::Sin)
    }

    /// Cosine.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(Unary::Cos, UnaryFn::Cos)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(Unary::Tanh, UnaryFn::Tanh)
    }

    /// Logistic sigmoid `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(Unary::Sigmoid, UnaryFn::Sigmoid)
    }

    /// Error function.
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(Unary::Erf, UnaryFn::Erf)
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        if self.dtype() == DType::I64 {
            return self.clamp(Some(0.0), None);
        }
        self.unary(Unary::Relu, UnaryFn::Relu)
    }

    /// GELU, exact (erf) form: `x/2 · (1 + erf(x/√2))`, as `torch.nn.functional.gelu`.
    pub fn gelu(&self) -> Result<Tensor> {
        let t = self.floated()?;
        let x = t.prim();
        let y = match ember_backend::cpu::gelu(&x) {
            Some(y) => y,
            None => {
                let e = prim::binary_scalar(Binary::Mul, x.clone(), FRAC_1_SQRT_2);
                let e = prim::binary_scalar(Binary::Add, prim::unary(Unary::Erf, e), 1.0);
                prim::binary(Binary::Mul, prim::binary_scalar(Binary::Mul, x, 0.5), e)
            }
        };
        Ok(self.wrap(y, self.shape()).recorded_unary(UnaryFn::Gelu, &t))
    }

    /// GELU, tanh approximation (`approximate="tanh"`, HF's `gelu_new`):
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        let tx = self.floated()?;
        let x = tx.prim();
        let y = match ember_backend::cpu::gelu_tanh(&x) {
            Some(y) => y,
            None => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                let x3 = prim::binary_scalar(Binary::Pow, x.clone(), 3.0);
                let x3 = prim::binary_scalar(Binary::Mul, x3, 0.044715);
                let inner = prim::binary(Binary::Add, x.clone(), x3);
                let t = prim::unary(Unary::Tanh, prim::binary_scalar(Binary::Mul, inner, k));
                let t = prim::binary_scalar(Binary::Add, t, 1.0);
                prim::binary(Binary::Mul, prim::binary_scalar(Binary::Mul, x, 0.5), t)
            }
        };
        Ok(self
            .wrap(y, self.shape())
            .recorded_unary(UnaryFn::GeluTanh, &tx))
    }

    /// SiLU (swish): `x · sigmoid(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        let t = self.floated()?;
        let x = t.prim();
        let s = prim::unary(Unary::Sigmoid, x.clone());
        let y = self.wrap(prim::binary(Binary::Mul, x, s), self.shape());
        Ok(y.recorded_unary(UnaryFn::Silu, &t))
    }

    /// `x ^ exponent` with a scalar exponent.
    pub fn powf(&self, exponent: f64) -> Result<Tensor> {
        self.floated()?
            .binary_scalar("powf", exponent, BinaryFn::Pow, Arith::Other)
    }

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

    /// `1 / x`.
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(Unary::Recip, UnaryFn::Recip)
    }

    /// `x * x`.
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }

    /// `self + rhs`, broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary("add", rhs, BinaryFn::Add, Arith::Ring)
    }

    /// `self - rhs`, broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary("sub", rhs, BinaryFn::Sub, Arith::Ring)
    }

    /// `self * rhs`, broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary("mul", rhs, BinaryFn::Mul, Arith::Ring)
    }

    /// `self / rhs`, broadcasting; integer operands give F32 (true division, as PyTorch).
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary("div", rhs, BinaryFn::Div, Arith::Div)
    }

    /// `self ^ rhs`, broadcasting.
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary("pow", rhs, BinaryFn::Pow, Arith::Other)
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        self.binary_scalar("add", s, BinaryFn::Add, Arith::Ring)
    }

    /// `self - s`.
    pub fn sub_scalar(&self, s: f64) -> Result<Tensor> {
        self.binary_scalar("sub", s, BinaryFn::Sub, Arith::Ring)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        self.binary_scalar("mul", s, BinaryFn::Mul, Arith::Ring)
    }

    /// `self / s` (integer tensors give F32).
    pub fn div_scalar(&self, s: f64) -> Result<Tensor> {
        self.binary_scalar("div", s, BinaryFn::Div, Arith::Div)
    }

    /// Elementwise maximum, broadcasting; NaN wins, as `torch.maximum`.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum("maximum", rhs, Compare::Lt)
    }

    /// Elementwise minimum, broadcasting; NaN wins, as `torch.minimum`.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum("minimum", rhs, Compare::Gt)
    }

    fn extremum(&self, op: &'static str, rhs: &Tensor, take_rhs_when: Compare) -> Result<Tensor> {
        let dtype = arith_dtype(op, self.dtype(), rhs.dtype(), Arith::Other)?;
        let (a, b, out) = self.broadcast_pair(op, rhs, dtype)?;
        let (a, b) = (prim::expand(a, &out_p(&out)), prim::expand(b, &out_p(&out)));
        let mut take_b = prim::compare(take_rhs_when, a.clone(), b.clone());
        if dtype.is_float() {
            take_b = prim::mask_where(take_b, prim::is_nan(b.clone()), prim::is_nan(b.clone()));
        }
        let y = self.wrap(prim::mask_where(a, take_b, b), out);
        Ok(y.record(&[self, rhs], || Op::Extremum {
            a: self.clone(),
            b: rhs.clone(),
            max: take_rhs_when == Compare::Lt,
        }))
    }

    fn compare(&self, op: &'static str, rhs: &Tensor, cmp: Compare) -> Result<Tensor> {
        let mut dtype = DType::promote(self.dtype(), rhs.dtype());
        if dtype == DType::Bool && !matches!(cmp, Compare::Eq | Compare::Ne) {
            dtype = DType::I64;
        }
        let (a, b, out) = self.broadcast_pair(op, rhs, dtype)?;
        let y = self.wrap(prim::compare(cmp, a, b), out);
        let x = if self.is_tracked() { self } else { rhs };
        Ok(y.record_nondiff(op, x))
    }

    fn compare_scalar(&self, op: &'static str, s: f64, cmp: Compare) -> Result<Tensor> {
        let x = match self.dtype() {
            DType::Bool => self.to_dtype(DType::I64)?,
            DType::I64 if s.fract() != 0.0 => self.to_dtype(DType::F32)?,
            _ => self.clone(),
        };
        let y = self.wrap(prim::compare_scalar(cmp, x.prim(), s), self.shape());
        Ok(y.record_nondiff(op, self))
    }

    /// `self == rhs` elementwise, as Bool.
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("eq", rhs, Compare::Eq)
    }

    /// `self != rhs` elementwise, as Bool.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("ne", rhs, Compare::Ne)
    }

    /// `self < rhs` elementwise, as Bool.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("lt", rhs, Compare::Lt)
    }

    /// `self <= rhs` elementwise, as Bool.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("le", rhs, Compare::Le)
    }

    /// `self > rhs` elementwise, as Bool.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("gt", rhs, Compare::Gt)
    }

    /// `self >= rhs` elementwise, as Bool.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("ge", rhs, Compare::Ge)
    }

    /// `self == s` elementwise, as Bool.
    pub fn eq_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("eq", s, Compare::Eq)
    }

    /// `self != s` elementwise, as Bool.
    pub fn ne_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("ne", s, Compare::Ne)
    }

    /// `self < s` elementwise, as Bool.
    pub fn lt_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("lt", s, Compare::Lt)
    }

    /// `self <= s` elementwise, as Bool.
    pub fn le_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("le", s, Compare::Le)
    }

    /// `self > s` elementwise, as Bool.
    pub fn gt_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("gt", s, Compare::Gt)
    }

    /// `self >= s` elementwise, as Bool.
    pub fn ge_scalar(&self, s: f64) -> Result<Tensor> {
        self.compare_scalar("ge", s, Compare::Ge)
    }

    /// Logical not of a Bool tensor.
    pub fn logical_not(&self) -> Result<Tensor> {
        if self.dtype() != DType::Bool {
            return Err(Error::dtype(
                "logical_not",
                format!("needs a bool tensor, got {}", self.dtype()),
            ));
        }
        Ok(self.wrap(prim::logical_not(self.prim()), self.shape()))
    }

    /// `torch.where(cond, on_true, on_false)`: broadcasts all three; `cond` must be Bool.
    ///
    /// ```
    /// # use ember_tensor::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0, -3.0], &[3], Device::Cpu)?;
    /// let zero = Tensor::scalar(0.0f32, Device::Cpu)?;
    /// let y = Tensor::where_(&x.gt_scalar(0.0)?, &x, &zero)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.0, 2.0, 0.0]);
    /// # Ok::<(), ember_tensor::Error>(())
    /// ```
    pub fn where_(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
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
                format!("the mask must be bool, got {}", self.dtype()),
            ));
        }
        Ok(())
    }

    fn check_not_bool(&self, op: &'static str) -> Result<()> {
        if self.dtype() == DType::Bool {
            return Err(Error::dtype(
                op,
                "not defined for bool tensors; convert with to_dtype first",
            ));
        }
        Ok(())
    }
}

fn prim_binary(f: BinaryFn) -> Binary {
    match f {
        BinaryFn::Add => Binary::Add,
        BinaryFn::Sub => Binary::Sub,
        BinaryFn::Mul => Binary::Mul,
        BinaryFn::Div => Binary::Div,
        BinaryFn::Pow => Binary::Pow,
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
