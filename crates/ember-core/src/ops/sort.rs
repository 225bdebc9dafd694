//! Ordering ops: `argsort`, `sort`, `topk`. The order is computed on the host (a stable sort,
//! so ties keep their input order; NaN sorts above every number, as PyTorch), and the values
//! are gathered on the device, so their gradient is `gather`'s.

use crate::base::shape::norm_dim;
use crate::{DType, Error, Result, Tensor};
use std::cmp::Ordering;

/// Ascending order with NaN greatest.
fn ascending(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Keys of one tensor in logical order, compared exactly for each dtype family.
enum Keys {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

impl Keys {
    fn cmp(&self, a: usize, b: usize) -> Ordering {
        match self {
            Keys::Float(v) => ascending(v[a], v[b]),
            Keys::Int(v) => v[a].cmp(&v[b]),
        }
    }
}

impl Tensor {
    /// The indices (I64) that sort `self` along `dim`, as `torch.argsort(stable=True)`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 1.0], &[4], Device::Cpu)?;
    /// assert_eq!(x.argsort(0, false)?.to_vec::<i64>()?, vec![1, 3, 2, 0]);
    /// assert_eq!(x.argsort(0, true)?.to_vec::<i64>()?, vec![0, 2, 1, 3]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn argsort(&self, dim: isize, descending: bool) -> Result<Tensor> {
        const OP: &str = "argsort";
        let d = norm_dim(OP, dim, self.rank().max(1))?;
        if self.rank() == 0 {
            return Tensor::zeros(&[], DType::I64, self.device());
        }
        let keys = if self.dtype().is_float() {
            Keys::Float(self.to_vec::<f64>()?)
        } else {
            Keys::Int(self.to_dtype(DType::I64)?.to_vec::<i64>()?)
        };
        let dims = self.dims();
        let n = dims[d];
        let inner: usize = dims[d + 1..].iter().product();
        let outer: usize = dims[..d].iter().product();
        let mut out = vec![0i64; self.numel()];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                order.clear();
                order.extend(0..n);
                order.sort_by(|&a, &b| {
                    let c = keys.cmp(at(a), at(b));
                    if descending { c.reverse() } else { c }
                });
                for (k, &src) in order.iter().enumerate() {
                    out[at(k)] = src as i64;
                }
            }
        }
        let idx = Tensor::from_vec(out, dims, self.device())?;
        Ok(idx.record_nondiff(OP, self))
    }

    /// The values sorted along `dim` and their source indices, as `torch.sort(stable=True)`.
    /// The values' gradient flows back to the positions they came from.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![3.0f32, 1.0, 2.0], &[3], Device::Cpu)?;
    /// let (values, indices) = x.sort(0, false)?;
    /// assert_eq!(values.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
    /// assert_eq!(indices.to_vec::<i64>()?, vec![1, 2, 0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn sort(&self, dim: isize, descending: bool) -> Result<(Tensor, Tensor)> {
        let idx = self.argsort(dim, descending)?;
        if self.rank() == 0 {
            return Ok((self.clone(), idx));
        }
        Ok((self.gather(dim, &idx)?, idx))
    }

    /// The `k` largest (or smallest) values along `dim`, in order, with their indices, as
    /// `torch.topk` (always sorted; ties keep their input order).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 4.0], &[4], Device::Cpu)?;
    /// let (values, indices) = x.topk(2, -1, true)?;
    /// assert_eq!(values.to_vec::<f32>()?, vec![5.0, 4.0]);
    /// assert_eq!(indices.to_vec::<i64>()?, vec![1, 3]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn topk(&self, k: usize, dim: isize, largest: bool) -> Result<(Tensor, Tensor)> {
        const OP: &str = "topk";
        let d = norm_dim(OP, dim, self.rank().max(1))?;
        let n = if self.rank() == 0 { 1 } else { self.dims()[d] };
        if k == 0 || k > n {
            return Err(Error::index(
                OP,
                k as i64,
                n,
                format!("k = {k} must be between 1 and the size {n} of dim {d}"),
            ));
        }
        let idx = self.argsort(dim, largest)?;
        if self.rank() == 0 {
            return Ok((self.clone(), idx));
        }
        let idx = idx.narrow(d as isize, 0, k)?;
        Ok((self.gather(d as isize, &idx)?, idx))
    }
}
