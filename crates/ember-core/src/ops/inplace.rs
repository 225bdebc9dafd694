//! In-place updates (`add_`, `sub_`, `mul_`, `div_`, `copy_`, `fill_`, `zero_`) for tensors
//! autograd does not track. The handle is pointed at the new value: other clones of the
//! tensor keep the old one (tensors are immutable values; PyTorch's clones would share the
//! change). Tracked tensors or operands are refused, so no gradient is silently lost.

use super::elementwise::Operand;
use crate::{Error, Result, Tensor};

impl Tensor {
    fn check_inplace(&self, op: &'static str, other: Option<&Tensor>) -> Result<()> {
        if self.is_tracked() || other.is_some_and(Tensor::is_tracked) {
            return Err(Error::data(
                op,
                format!(
                    "in-place update of a tensor {:?} with autograd tracking the {}; use the \
                     out-of-place op, or detach / no_grad",
                    self.dims(),
                    if self.is_tracked() {
                        "tensor"
                    } else {
                        "operand"
                    }
                ),
            ));
        }
        Ok(())
    }

    /// Replaces this handle's value by `y`, which must keep the shape and fit the dtype
    /// (an integer tensor cannot take a float result, as PyTorch).
    fn assign(&mut self, op: &'static str, y: Tensor) -> Result<()> {
        if y.dims() != self.dims() {
            return Err(Error::shape(
                op,
                &[self.dims(), y.dims()],
                format!(
                    "the result {:?} would not fit the tensor {:?} updated in place",
                    y.dims(),
                    self.dims()
                ),
            ));
        }
        if y.dtype().is_float() && !self.dtype().is_float() {
            return Err(Error::dtype(
                op,
                &[self.dtype(), y.dtype()],
                format!(
                    "the result type {} cannot be stored in place in a {} tensor",
                    y.dtype(),
                    self.dtype()
                ),
            ));
        }
        *self = y.to_dtype(self.dtype())?;
        Ok(())
    }

    fn update<'a>(
        &mut self,
        op: &'static str,
        other: impl Into<Operand<'a>>,
        f: fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let other = other.into().beside(self)?;
        self.check_inplace(op, Some(&other))?;
        let y = f(self, &other)?;
        self.assign(op, y)
    }

    /// `self += other` (a tensor that broadcasts to `self`, or a number), as
    /// `torch.Tensor.add_`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let mut x = Tensor::from_vec(vec![1.0f32, 2.0], &[2], Device::Cpu)?;
    /// x.add_(1.5)?;
    /// x.mul_(&Tensor::from_vec(vec![2.0f32, 3.0], &[2], Device::Cpu)?)?;
    /// assert_eq!(x.to_vec::<f32>()?, vec![5.0, 10.5]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn add_<'a>(&mut self, other: impl Into<Operand<'a>>) -> Result<()> {
        self.update("add_", other, Tensor::add)
    }

    /// `self -= other`, as `torch.Tensor.sub_`.
    pub fn sub_<'a>(&mut self, other: impl Into<Operand<'a>>) -> Result<()> {
        self.update("sub_", other, Tensor::sub)
    }

    /// `self *= other`, as `torch.Tensor.mul_`.
    pub fn mul_<'a>(&mut self, other: impl Into<Operand<'a>>) -> Result<()> {
        self.update("mul_", other, Tensor::mul)
    }

    /// `self /= other` (true division, so integer tensors are refused), as
    /// `torch.Tensor.div_`.
    pub fn div_<'a>(&mut self, other: impl Into<Operand<'a>>) -> Result<()> {
        self.update("div_", other, Tensor::div)
    }

    /// Copies `src` (broadcast to this shape, converted to this dtype and device) into this
    /// tensor, as `torch.Tensor.copy_`.
    pub fn copy_(&mut self, src: &Tensor) -> Result<()> {
        self.check_inplace("copy_", Some(src))?;
        let y = src
            .to_device(self.device())?
            .to_dtype(self.dtype())?
            .broadcast_to(self.dims())?;
        *self = y.contiguous()?;
        Ok(())
    }

    /// Sets every element to `value`, as `torch.Tensor.fill_`.
    pub fn fill_(&mut self, value: f64) -> Result<()> {
        self.check_inplace("fill_", None)?;
        *self = Tensor::full(self.dims(), value, self.dtype(), self.device())?;
        Ok(())
    }

    /// Sets every element to zero, as `torch.Tensor.zero_`.
    pub fn zero_(&mut self) -> Result<()> {
        self.fill_(0.0)
    }
}
