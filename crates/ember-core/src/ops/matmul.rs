//! Matrix multiplication with PyTorch's rules.

use crate::autocast::{autocast_dtype, lower};
use crate::kernels::{self, prim};
use crate::{Error, Result};

use crate::base::shape::broadcast;
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product as `torch.matmul`: 1-D·1-D is a dot product, a 1-D operand is treated as a
    /// row (left) or column (right) vector and its dim removed, and leading batch dims
    /// broadcast.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Device::Cpu)?;
    /// let b = Tensor::ones(&[4, 3, 5], ember_core::DType::F32, Device::Cpu)?;
    /// assert_eq!(a.matmul(&b)?.dims(), &[4, 2, 5]);
    /// let bad = Tensor::ones(&[4, 5], ember_core::DType::F32, Device::Cpu)?;
    /// assert_eq!(
    ///     a.matmul(&bad).unwrap_err().to_string(),
    ///     "matmul: shapes [2, 3] and [4, 5] are not compatible (3 != 4)"
    /// );
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if autocast_dtype().is_some() {
            return lower(self)?.matmul_in_dtype(&lower(rhs)?);
        }
        self.matmul_in_dtype(rhs)
    }

    /// `matmul` without autocast's casts.
    fn matmul_in_dtype(&self, rhs: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        self.same_device(OP, rhs)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::shape(
                OP,
                &[self.dims(), rhs.dims()],
                format!(
                    "both operands need at least 1 dim, got shapes {:?} and {:?}",
                    self.dims(),
                    rhs.dims()
                ),
            ));
        }
        let dtype = self.dtype();
        if !dtype.is_float() || !rhs.dtype().is_float() {
            return Err(Error::dtype(
                OP,
                &[self.dtype(), rhs.dtype()],
                format!(
                    "needs float operands, got {} and {}",
                    self.dtype(),
                    rhs.dtype()
                ),
            ));
        }
        if rhs.dtype() != dtype {
            // As PyTorch: no promotion in products (convert one side with to_dtype, or run
            // under autocast).
            return Err(Error::dtype(
                OP,
                &[self.dtype(), rhs.dtype()],
                format!(
                    "expected both operands to have the same dtype, got {} and {}",
                    self.dtype(),
                    rhs.dtype()
                ),
            ));
        }
        // Matrices: a (.., m, k), b (.., k, n).
        let (mut a_shape, mut b_shape) = (self.shape(), rhs.shape());
        let (a_vec, b_vec) = (self.rank() == 1, rhs.rank() == 1);
        if a_vec {
            a_shape.insert(0, 1);
        }
        if b_vec {
            b_shape.push(1);
        }
        let (ra, rb) = (a_shape.len(), b_shape.len());
        let (m, k) = (a_shape[ra - 2], a_shape[ra - 1]);
        let (k2, n) = (b_shape[rb - 2], b_shape[rb - 1]);
        if k != k2 {
            return Err(Error::shape(
                OP,
                &[self.dims(), rhs.dims()],
                format!(
                    "shapes {:?} and {:?} are not compatible ({k} != {k2})",
                    self.dims(),
                    rhs.dims()
                ),
            ));
        }
        let batch = broadcast(OP, &a_shape[..ra - 2], &b_shape[..rb - 2])?;
        let full = |mat: [usize; 2]| -> Vec<usize> {
            let mut s = batch.clone();
            s.extend_from_slice(&mat);
            s
        };
        let (fa, fb) = (full([m, k]), full([k, n]));
        let pa = kernels::layout::reshape(self.to_dtype(dtype)?.prim(), &a_shape);
        let pb = kernels::layout::reshape(rhs.to_dtype(dtype)?.prim(), &b_shape);
        let y = if rb == 2 && ra > 2 {
            // A stack of rows times one matrix (a Linear layer): one large product
            // (batch·m, k) @ (k, n) instead of a batch of small ones over a broadcast matrix.
            let rows = fa[..fa.len() - 1].iter().product::<usize>();
            let y = kernels::matmul::matmul(kernels::layout::reshape(pa, &[rows, k]), pb); // (batch·m, n)
            kernels::layout::reshape(y, &full([m, n]))
        } else {
            let pa = prim::expand(lift(pa, fa.len()), &fa);
            let pb = prim::expand(lift(pb, fb.len()), &fb);
            kernels::matmul::matmul(pa, pb) // (batch.., m, n)
        };
        let mut out = batch;
        if !a_vec {
            out.push(m);
        }
        if !b_vec {
            out.push(n);
        }
        let y = self.wrap(super::reduce::reshape_to(y, &out), out);
        // A frozen right operand (a weight without gradient) leaves the left one's data
        // unread by the rule: keep only its graph node.
        Ok(y.record(&[self, rhs], || {
            let a = if !rhs.is_tracked() && self.rank() >= 2 {
                self.graph_handle()
            } else {
                self.clone()
            };
            crate::autograd::Op::Matmul(a, rhs.clone())
        }))
    }
}

impl Tensor {
    /// `x Wᵀ + b` for `weight (out, in)` and `bias (out,)`, as `torch.nn.functional.linear`;
    /// `self` is `(.., in)`. Under autocast all three run in the low-precision dtype.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let x = Tensor::ones(&[2, 5, 3], DType::F32, Device::Cpu)?;
    /// let w = Tensor::ones(&[4, 3], DType::F32, Device::Cpu)?;
    /// let b = Tensor::full(&[4], 0.5, DType::F32, Device::Cpu)?;
    /// let y = x.linear(&w, Some(&b))?; // (2, 5, 4)
    /// assert_eq!(y.to_vec::<f32>()?[0], 3.5);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = lower(self)?.matmul_in_dtype(&lower(weight)?.transpose(0, 1)?)?; // (.., out)
        match bias {
            Some(b) => y.add(&lower(b)?),
            None => Ok(y),
        }
    }

    /// `bias + self @ mat` for `mat (in, out)` and `bias (out,)`, as `torch.addmm(bias, self,
    /// mat)` (Hugging Face's `Conv1D`); `self` is `(.., in)` (PyTorch's takes 2-D only).
    /// Under autocast all three run in the low-precision dtype.
    pub fn addmm(&self, mat: &Tensor, bias: &Tensor) -> Result<Tensor> {
        lower(self)?
            .matmul_in_dtype(&lower(mat)?)?
            .add(&lower(bias)?)
    }
}

impl Tensor {
    /// `beta · self + alpha · (batch1 @ batch2)`, as `torch.baddbmm` (`self` broadcasts to the
    /// `(B, n, p)` product; `beta = 0` ignores `self`, NaN included, as PyTorch).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let a = Tensor::ones(&[2, 3, 4], DType::F32, Device::Cpu)?;
    /// let b = Tensor::ones(&[2, 4, 5], DType::F32, Device::Cpu)?;
    /// let c = Tensor::ones(&[5], DType::F32, Device::Cpu)?;
    /// let y = c.baddbmm(&a, &b, 1.0, 0.5)?; // (2, 3, 5)
    /// assert_eq!(y.to_vec::<f32>()?[0], 3.0);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn baddbmm(
        &self,
        batch1: &Tensor,
        batch2: &Tensor,
        beta: f64,
        alpha: f64,
    ) -> Result<Tensor> {
        if batch1.rank() != 3 || batch2.rank() != 3 {
            return Err(Error::shape(
                "baddbmm",
                &[batch1.dims(), batch2.dims()],
                format!(
                    "needs two 3-D batches, got {:?} and {:?}",
                    batch1.dims(),
                    batch2.dims()
                ),
            ));
        }
        let prod = batch1.matmul(batch2)?;
        let prod = if alpha == 1.0 {
            prod
        } else {
            prod.mul_scalar(alpha)?
        };
        if beta == 0.0 {
            return prod.add(&self.zeros_like()?);
        }
        let base = if beta == 1.0 {
            self.clone()
        } else {
            self.mul_scalar(beta)?
        };
        base.add(&prod)
    }
}

impl Tensor {}

/// Prepends size-1 dims up to `rank`.
fn lift(p: prim::Prim, rank: usize) -> prim::Prim {
    let dims = p.dims();
    if dims.len() == rank {
        return p;
    }
    let mut s = vec![1; rank - dims.len()];
    s.extend(dims);
    kernels::layout::reshape(p, &s)
}
