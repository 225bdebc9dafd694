//! `x wᵀ + b` for a quantized weight ([`QTensor`]), forward and backward.
//!
//! f32 activations on the CPU: the activations quantized to 8-bit blocks and multiplied with
//! the repacked weight by integer dot products (`cpu::qlinear`: AVX512-VNNI, AVX2 or
//! portable, the widest this CPU has). Everywhere else: the product with the
//! dequantized weight, which is the reference. The backward gives the activations'
//! gradient `g w` through the dequantized weight (the weight itself gets none).

use super::cpu::gemm::pack_int8::Packed;
use super::cpu::isa::Int8Dot;
use super::cpu::qlinear as cpu;
use super::trace::{Impl, note};
use crate::base::quant::QTensor;
use crate::{DType, Device, Result, Tensor};

/// The blocks of `w` repacked for the CPU kernels, built once per weight (shared by clones).
fn packed(w: &QTensor) -> Option<&Packed> {
    w.kernel_cache().get_or_init(|| Packed::new(w))
}

impl QTensor {
    /// Repacks the blocks now for the CPU kernels (otherwise done on first use), so that a
    /// model's first token does not pay for it.
    pub fn prepare(&self) {
        let _ = packed(self);
    }

    /// Bytes that one CPU product streams: the repacked weight (rows padded to 16). Per 32
    /// values of a row: Q4_0 18, Q4_1 and Q4_K 20, Q8_0 and Q5_0 34, Q5_1, Q5_K and Q6_K 36
    /// (4-bit codes two to a byte, wider ones a byte each; f16 scales, and f16 offsets for
    /// the asymmetric formats).
    pub fn packed_bytes(&self) -> usize {
        packed(self).map_or(0, Packed::nbytes)
    }
}

/// `x (.., in) · wᵀ (+ bias (out,))` → `(.., out)`, untracked.
pub(crate) fn forward(x: &Tensor, w: &QTensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if x.device() == Device::Cpu
        && x.dtype() == DType::F32
        && let Some(p) = packed(w)
    {
        let xc = x.contiguous()?;
        let bias_c = bias.map(Tensor::contiguous).transpose()?;
        let mut shape = x.shape();
        *shape.last_mut().expect("rank >= 1") = w.dims()[0];
        let pb = bias_c.as_ref().map(Tensor::prim);
        if let Some((y, kernel)) = cpu::qlinear(&xc.prim(), p, pb.as_ref(), shape.clone()) {
            note(
                "qlinear",
                match kernel {
                    Int8Dot::Amx(_) => Impl::CpuInt8Amx,
                    Int8Dot::Vnni => Impl::CpuInt8Vnni,
                    Int8Dot::Avx2 => Impl::CpuInt8Avx2,
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Int8Dot::Simd128 => Impl::CpuInt8Simd128,
                    Int8Dot::Portable => Impl::CpuInt8,
                },
            );
            return Ok(x.wrap(y, shape));
        }
    }
    note("qlinear", Impl::Composed);
    let wd = w.dequantize(x.dtype(), x.device())?;
    let y = x.detach().matmul(&wd.transpose(0, 1)?)?;
    match bias {
        Some(b) => y.add(&b.detach()),
        None => Ok(y),
    }
}

/// The gradient of the activations: `g (.., out) · w (out, in)`.
pub(crate) fn backward(w: &QTensor, g: &Tensor) -> Result<Tensor> {
    note("qlinear_backward", Impl::Composed);
    g.matmul(&w.dequantize(g.dtype(), g.device())?)
}
