//! Reductions over one or several dims: the `Tensor` methods of the reduction table
//! (`base/tables/reduce.rs`: sum, mean, max, min), arg-reductions, variance, `logsumexp`, norms.

use crate::autograd::Op;
use crate::base::shape::{norm_dim, norm_dims};
use crate::base::tables::reduce::reduce_table;
use crate::kernels::{self, prim, prim::Prim};
use crate::{DType, Error, ReduceFn, Result, Tensor};

/// Shape after reducing `dims` (sorted, unique).
fn reduced_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (i, &s) in shape.iter().enumerate() {
        if dims.contains(&i) {
            if keepdim {
                out.push(1);
            }
        } else {
            out.push(s);
        }
    }
    out
}

macro_rules! reduce_methods {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $int:expr, $float:expr);
    )+) => {
        impl Tensor {
            $(
                $(#[doc = $doc])+
                pub fn $method(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
                    self.reduce(ReduceFn::$variant, dims, keepdim)
                }
            )+
        }
    };
}

reduce_table!(reduce_methods);

impl Tensor {
    /// Reduces `dims` (`&[]` for all): `t.reduce(ReduceFn::Sum, &[-1], false)` is
    /// `t.sum(&[-1], false)`. Each dim is reduced with burn's keep-dim reductions, then the
    /// dims are dropped unless `keepdim`.
    pub fn reduce(&self, f: ReduceFn, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let op = f.name();
        let x = match (f, self.dtype()) {
            (ReduceFn::Mean, d) if !d.is_float() => {
                return Err(Error::dtype(
                    op,
                    &[d],
                    format!("needs a float dtype, got {d}; convert with to_dtype first"),
                ));
            }
            (_, DType::Bool) => self.to_dtype(DType::I64)?,
            _ => self.clone(),
        };
        let dims = norm_dims(op, dims, self.rank())?;
        if self.rank() == 0 {
            return Ok(x);
        }
        let p = crate::kernels::reduce::reduce(f, x.prim(), &dims);
        let out = reduced_shape(self.dims(), &dims, keepdim);
        Ok(self
            .wrap(reshape_to(p, &out), out)
            .record(&[&x], || Op::Reduce {
                kind: f,
                // Sum and mean read only the input's shape: a graph handle.
                x: match f {
                    ReduceFn::Sum | ReduceFn::Mean => x.graph_handle(),
                    _ => x.clone(),
                },
                dims,
                keepdim,
            }))
    }

    /// Index (I64) of the maximum along `dim`; the first one on ties.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce("argmax", true, dim, keepdim)
    }

    /// Index (I64) of the minimum along `dim`; the first one on ties.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce("argmin", false, dim, keepdim)
    }

    fn arg_reduce(&self, op: &'static str, max: bool, dim: isize, keepdim: bool) -> Result<Tensor> {
        let x = if self.dtype() == DType::Bool {
            self.to_dtype(DType::I64)?
        } else {
            self.clone()
        };
        if self.rank() == 0 {
            norm_dim(op, dim, 1)?;
            return Tensor::zeros(&[], DType::I64, self.device());
        }
        let d = norm_dim(op, dim, self.rank())?;
        let p = prim::arg_reduce(max, x.prim(), d);
        let out = reduced_shape(self.dims(), &[d], keepdim);
        Ok(self.wrap(reshape_to(p, &out), out).record_nondiff(op, self))
    }

    /// Variance over `dims` with Bessel's `correction` (1 gives `torch.var`'s default).
    pub fn var(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        const OP: &str = "var";
        self.check_float(OP)?;
        let nd = norm_dims(OP, dims, self.rank())?;
        let n: usize = nd.iter().map(|&d| self.dims()[d]).product();
        if n <= correction {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "{n} elements over dims {dims:?} of shape {:?} leave no degrees of freedom \
                     with correction {correction}",
                    self.dims()
                ),
            ));
        }
        let mean = self.mean(dims, true)?;
        let centered = self.sub(&mean)?;
        let ss = centered.square()?.sum(dims, keepdim)?;
        ss.div_scalar((n - correction) as f64)
    }

    /// `log(Σ exp(x))` over `dims`, computed stably (shifted by the max).
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        const OP: &str = "logsumexp";
        let x = self.floated_for(OP)?;
        let nd = norm_dims(OP, dims, self.rank())?;
        let y = kernels::reduce::logsumexp(x.prim(), &nd);
        let out = reduced_shape(self.dims(), &nd, keepdim);
        Ok(self
            .wrap(reshape_to(y, &out), out)
            .record(&[&x], || Op::LogSumExp {
                x: x.clone(),
                dims: nd,
                keepdim,
            }))
    }

    fn check_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::dtype(
                op,
                &[self.dtype()],
                format!("needs a float dtype, got {}", self.dtype()),
            ));
        }
        Ok(())
    }

    /// Ints and bools as F32, floats unchanged (PyTorch promotes for these ops).
    pub(crate) fn floated_for(&self, _op: &'static str) -> Result<Tensor> {
        if self.dtype().is_float() {
            Ok(self.clone())
        } else {
            self.to_dtype(DType::F32)
        }
    }
}

/// Reshapes a primitive to a logical shape (rank 0 as `[1]`).
pub(crate) fn reshape_to(p: Prim, shape: &[usize]) -> Prim {
    let target = super::elementwise::out_p(shape);
    if p.dims() == target {
        p
    } else {
        kernels::layout::reshape(p, &target)
    }
}

impl Tensor {
    /// The standard deviation over `dims` (all when empty) with Bessel's `correction`, as
    /// `torch.std`: the square root of [`Tensor::var`].
    pub fn std(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        self.var(dims, correction, keepdim)?.sqrt()
    }

    /// The vector `p`-norm over `dims` (`&[]` for all), as `torch.linalg.vector_norm` /
    /// `Tensor.norm(p)`: `(Σ|x|^p)^(1/p)`; `p = ∞` is the largest `|x|`, `-∞` the smallest,
    /// `0` the count of non-zeros. Composed, so at an all-zero input the 2-norm's gradient is
    /// NaN where PyTorch gives 0.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![3.0f32, -4.0], &[2], Device::Cpu)?;
    /// assert_eq!(x.norm(2.0, &[], false)?.to_scalar::<f32>()?, 5.0);
    /// assert_eq!(x.norm(f64::INFINITY, &[], false)?.to_scalar::<f32>()?, 4.0);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn norm(&self, p: f64, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.check_float("norm")?;
        let a = self.abs()?;
        if p == f64::INFINITY {
            a.max(dims, keepdim)
        } else if p == f64::NEG_INFINITY {
            a.min(dims, keepdim)
        } else if p == 0.0 {
            // A count: piecewise constant, returned untracked (PyTorch's gradient is zero).
            let count = a.detach().ne_scalar(0.0)?.to_dtype(self.dtype())?;
            count.sum(dims, keepdim)
        } else if p == 1.0 {
            a.sum(dims, keepdim)
        } else if p == 2.0 {
            self.square()?.sum(dims, keepdim)?.sqrt()
        } else if p.is_nan() {
            Err(Error::data("norm", "p is NaN"))
        } else {
            a.powf(p)?.sum(dims, keepdim)?.powf(1.0 / p)
        }
    }

    /// `self + weight · (end - self)`, as `torch.lerp` (`weight` a tensor that broadcasts).
    pub fn lerp(&self, end: &Tensor, weight: &Tensor) -> Result<Tensor> {
        self.add(&weight.mul(&end.sub(self)?)?)
    }

    /// The outer product of two vectors, `(n,) ⊗ (m,) → (n, m)`, as `torch.outer`.
    pub fn outer(&self, other: &Tensor) -> Result<Tensor> {
        if self.rank() != 1 || other.rank() != 1 {
            return Err(Error::shape(
                "outer",
                &[self.dims(), other.dims()],
                format!(
                    "needs two vectors, got {:?} and {:?}",
                    self.dims(),
                    other.dims()
                ),
            ));
        }
        self.unsqueeze(1)?.mul(&other.unsqueeze(0)?)
    }
}
