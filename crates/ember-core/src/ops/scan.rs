//! Running sums and products along a dim (`cumsum`, `cumprod`) and the product reduction
//! built on them (`prod`).

use crate::autograd::Op;
use crate::base::shape::{norm_dim, norm_dims};
use crate::kernels::prim;
use crate::{DType, Result, Tensor};

impl Tensor {
    /// Bool counts as I64 in running sums and products, as PyTorch.
    fn counted(&self) -> Result<Tensor> {
        if self.dtype() == DType::Bool {
            self.to_dtype(DType::I64)
        } else {
            Ok(self.clone())
        }
    }

    /// Running sums along `dim`, as `torch.cumsum` (Bool counts as I64; a 0-d tensor is its
    /// own sum).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], Device::Cpu)?;
    /// assert_eq!(x.cumsum(0)?.to_vec::<f32>()?, vec![1.0, 2.0, 4.0, 6.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn cumsum(&self, dim: isize) -> Result<Tensor> {
        let d = norm_dim("cumsum", dim, self.rank().max(1))?;
        let x = self.counted()?;
        if x.rank() == 0 {
            return Ok(x);
        }
        let y = x.wrap(prim::cumsum(x.prim(), d), x.shape());
        Ok(y.record(&[&x], || Op::Cumsum(x.clone(), d)))
    }

    /// Running products along `dim`, as `torch.cumprod` (Bool counts as I64). The gradient
    /// is exact where inputs are zero, as PyTorch's.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4], Device::Cpu)?;
    /// assert_eq!(x.cumprod(0)?.to_vec::<f32>()?, vec![1.0, 2.0, 6.0, 24.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn cumprod(&self, dim: isize) -> Result<Tensor> {
        let d = norm_dim("cumprod", dim, self.rank().max(1))?;
        let x = self.counted()?;
        if x.rank() == 0 {
            return Ok(x);
        }
        let y = x.wrap(prim::cumprod(x.prim(), d), x.shape());
        Ok(y.record(&[&x], || Op::Cumprod(x.clone(), d)))
    }

    /// The product over `dims` (`&[]` for all), as `torch.prod` (Bool counts as I64): the
    /// last running product, so its gradient is exact at zeros.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], Device::Cpu)?;
    /// assert_eq!(x.prod(&[1], false)?.to_vec::<f32>()?, vec![2.0, 12.0]);
    /// assert_eq!(x.prod(&[], false)?.to_scalar::<f32>()?, 24.0);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn prod(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let nd = norm_dims("prod", dims, self.rank())?;
        let mut y = self.counted()?;
        if y.rank() == 0 {
            return Ok(y);
        }
        for &d in &nd {
            let n = y.dims()[d];
            y = y.cumprod(d as isize)?.narrow(d as isize, n - 1, 1)?;
        }
        if keepdim {
            return Ok(y);
        }
        for &d in nd.iter().rev() {
            y = y.squeeze(d as isize)?;
        }
        Ok(y)
    }
}
