//! Activations that are one op of their own beyond the unary table (GELU, SiLU and the other
//! rows of `base/tables/unary.rs` are `Tensor` methods of `ops/unary.rs`): SwiGLU's product
//! (`kernels::activation`).

use crate::autograd::Op;
use crate::kernels;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// SwiGLU's product `silu(self) · up` (Llama's MLP: `F.silu(gate) * up`) for tensors of one
    /// shape and float dtype, as one op: it keeps `self` and `up` only and recomputes the
    /// SiLU in its backward, where the two ops would also keep `silu(self)`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let gate = Tensor::from_vec(vec![0.0f32, 2.0], &[2], Device::Cpu)?;
    /// let up = Tensor::from_vec(vec![3.0f32, 0.5], &[2], Device::Cpu)?;
    /// let y = gate.silu_mul(&up)?.to_vec::<f32>()?;
    /// assert!(y[0] == 0.0 && (y[1] - 0.880797).abs() < 1e-5); // 2·σ(2)·0.5
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn silu_mul(&self, up: &Tensor) -> Result<Tensor> {
        const OP: &str = "silu_mul";
        self.same_device(OP, up)?;
        if self.dims() != up.dims() || self.dtype() != up.dtype() || !self.dtype().is_float() {
            return Err(Error::shape(
                OP,
                &[self.dims(), up.dims()],
                format!(
                    "gate and up must be float tensors of one shape and dtype, got {} {:?} and \
                     {} {:?}",
                    self.dtype(),
                    self.dims(),
                    up.dtype(),
                    up.dims()
                ),
            ));
        }
        self.fused(
            &[self, up],
            || kernels::activation::silu_mul(self, up),
            || Op::SiluMul(self.clone(), up.clone()),
        )
    }
}
