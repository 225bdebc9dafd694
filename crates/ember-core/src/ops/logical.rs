//! Truth-value ops: `logical_and` / `or` / `xor` / `not` and the `any` / `all` reductions.
//! Every input counts as true where it is non-zero (NaN is true), as PyTorch; results are Bool.

use crate::kernels::prim;
use crate::{DType, Result, Tensor};

impl Tensor {
    /// Non-zero as Bool, as I64 0/1 (for arithmetic on truth values).
    fn truth(&self) -> Result<Tensor> {
        let t = if self.dtype() == DType::Bool {
            self.clone()
        } else {
            self.ne_scalar(0.0)?
        };
        t.to_dtype(DType::I64)
    }

    /// `self == 0` elementwise, as `torch.logical_not`.
    pub fn logical_not(&self) -> Result<Tensor> {
        if self.dtype() == DType::Bool {
            return Ok(self.wrap(prim::logical_not(self.prim()), self.shape()));
        }
        self.eq_scalar(0.0)
    }

    /// Both non-zero, with broadcasting, as `torch.logical_and`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let a = Tensor::from_vec(vec![0.0f32, 1.0, 2.0], &[3], Device::Cpu)?;
    /// let b = Tensor::from_vec(vec![true, true, false], &[3], Device::Cpu)?;
    /// assert_eq!(a.logical_and(&b)?.to_vec::<bool>()?, vec![false, true, false]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn logical_and(&self, other: &Tensor) -> Result<Tensor> {
        self.truth()?.mul(&other.truth()?)?.ne_scalar(0.0)
    }

    /// Either non-zero, with broadcasting, as `torch.logical_or`.
    pub fn logical_or(&self, other: &Tensor) -> Result<Tensor> {
        self.truth()?.add(&other.truth()?)?.ne_scalar(0.0)
    }

    /// Exactly one non-zero, with broadcasting, as `torch.logical_xor`.
    pub fn logical_xor(&self, other: &Tensor) -> Result<Tensor> {
        self.truth()?.ne(&other.truth()?)
    }

    /// Whether any element over `dims` (`&[]` for all) is non-zero, as `torch.any`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![0i64, 0, 3, 0], &[2, 2], Device::Cpu)?;
    /// assert_eq!(x.any(&[1], false)?.to_vec::<bool>()?, vec![false, true]);
    /// assert!(!x.all(&[], false)?.to_scalar::<bool>()?);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn any(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.truth()?.max(dims, keepdim)?.ne_scalar(0.0)
    }

    /// Whether every element over `dims` (`&[]` for all) is non-zero, as `torch.all`.
    pub fn all(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.truth()?.min(dims, keepdim)?.ne_scalar(0.0)
    }
}
