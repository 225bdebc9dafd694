//! Softmax and log-softmax along one dim: one recorded op each, computed by the kernel entry
//! `kernels::softmax`.

use crate::autograd::Op;
use crate::base::shape::norm_dim;
use crate::kernels;
use crate::{DType, Result, Tensor};

impl Tensor {
    /// Softmax along `dim`, numerically stable.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1.0f32, 1.0, 1000.0, 1000.0], &[2, 2], Device::Cpu)?;
    /// assert_eq!(t.softmax(-1)?.to_vec::<f32>()?, vec![0.5; 4]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        const OP: &str = "softmax";
        let x = self.floated_for(OP)?;
        if self.rank() == 0 {
            norm_dim(OP, dim, 1)?;
            return self.ones_like()?.to_dtype(x.dtype());
        }
        let d = norm_dim(OP, dim, self.rank())?;
        let y = kernels::softmax::softmax(&x, d);
        Ok(y.record(&[&x], || Op::Softmax {
            x: x.clone(),
            dim: d,
        }))
    }

    /// `log(softmax(x))` along `dim`, as one op with its own backward.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        const OP: &str = "log_softmax";
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(DType::F32)?
        };
        let d = norm_dim(OP, dim, x.rank().max(1))?;
        x.fused(
            &[&x],
            || kernels::softmax::log_softmax(&x, d),
            || Op::LogSoftmax {
                x: x.clone(),
                dim: d,
            },
        )
    }
}
