//! Layer norm and RMS norm over the last dim: validation, then one recorded op whose forward
//! and backward are the kernel entry `kernels::norm`.

use crate::autograd::Op;
use crate::kernels;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Layer normalization over the last dim, as `torch.nn.functional.layer_norm(x, (D,),
    /// weight, bias, eps)`. `weight` and `bias` are `(D,)` and optional. The result has
    /// `x`'s dtype (a bf16 `x` with f32 parameters gives bf16, as PyTorch on the CPU).
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        self.check_norm_params(OP, &[weight, bias])?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        self.fused(
            &inputs,
            || kernels::norm::layer_norm(self, weight, bias, eps)?.to_dtype(self.dtype()),
            || Op::LayerNorm {
                x: self.clone(),
                weight: weight.cloned(),
                bias: bias.cloned(),
                eps,
            },
        )
    }

    /// RMS normalization over the last dim: `x / sqrt(mean(x²) + eps) · weight`, as
    /// `torch.nn.functional.rms_norm` and Llama's `LlamaRMSNorm`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        self.check_norm_params(OP, &[weight])?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        self.fused(
            &inputs,
            || kernels::norm::rms_norm(self, weight, eps)?.to_dtype(self.dtype()),
            || Op::RmsNorm {
                x: self.clone(),
                weight: weight.cloned(),
                eps,
            },
        )
    }

    fn check_norm_params(&self, op: &'static str, params: &[Option<&Tensor>]) -> Result<usize> {
        if !self.dtype().is_float() || self.rank() == 0 {
            return Err(Error::dtype(
                op,
                &[self.dtype()],
                format!(
                    "needs a float input of rank >= 1, got {} of shape {:?}",
                    self.dtype(),
                    self.dims()
                ),
            ));
        }
        let d = self.dims()[self.rank() - 1];
        for p in params.iter().flatten() {
            self.same_device(op, p)?;
            if p.dims() != [d] {
                return Err(Error::shape(
                    op,
                    &[p.dims(), self.dims()],
                    format!(
                        "parameter of shape {:?} does not match the last dim of input {:?}",
                        p.dims(),
                        self.dims()
                    ),
                ));
            }
        }
        Ok(d)
    }
}
