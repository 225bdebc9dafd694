//! Rotary position embedding: validation, then one recorded op (`kernels::rotary`).

use crate::autograd::Op;
use crate::kernels;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Rotary position embedding as Llama's `apply_rotary_pos_emb`: `x·cos + rotate_half(x)·sin`
    /// with `rotate_half(x) = cat(-x₂, x₁)` of the last dim's halves. `x` is `(.., T, D)`
    /// (`D` even), `cos` and `sin` `(T, D)` tables (constants: they get no gradient).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 4], Device::Cpu)?; // (T, D)
    /// let cos = Tensor::zeros(&[1, 4], DType::F32, Device::Cpu)?;
    /// let sin = Tensor::ones(&[1, 4], DType::F32, Device::Cpu)?;
    /// assert_eq!(x.rotary(&cos, &sin)?.to_vec::<f32>()?, vec![-3.0, -4.0, 1.0, 2.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn rotary(&self, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        const OP: &str = "rotary";
        let r = self.rank();
        let ok = r >= 2 && self.dims()[r - 1].is_multiple_of(2);
        let table = [
            self.dims().get(r.wrapping_sub(2)).copied().unwrap_or(0),
            self.dims().last().copied().unwrap_or(0),
        ];
        if !ok || cos.dims() != table || sin.dims() != table {
            return Err(Error::shape(
                OP,
                &[self.dims(), cos.dims(), sin.dims()],
                format!(
                    "x must be (.., T, D) with D even and cos, sin (T, D); got {:?}, {:?}, {:?}",
                    self.dims(),
                    cos.dims(),
                    sin.dims()
                ),
            ));
        }
        if !self.dtype().is_float() {
            return Err(Error::dtype(OP, &[self.dtype()], "needs a float input"));
        }
        self.same_device(OP, cos)?;
        self.same_device(OP, sin)?;
        let cos = cos.detach().to_dtype(self.dtype())?;
        let sin = sin.detach().to_dtype(self.dtype())?;
        self.fused(
            &[self],
            || kernels::rotary::rotary(self, &cos, &sin),
            // The rule rotates the gradient back with the tables: `x`'s data is not read.
            || Op::Rotary {
                x: self.graph_handle(),
                cos: cos.clone(),
                sin: sin.clone(),
            },
        )
    }
}
