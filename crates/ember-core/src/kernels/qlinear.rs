//! `x wᵀ + b` for a quantized weight ([`QTensor`]), forward and backward.
//!
//! f32 activations on the CPU: the activations quantized to 8-bit blocks and multiplied with
//! the repacked weight by integer dot products (`cpu::qdot`: AVX512-VNNI, AVX2 or
//! portable, the widest this CPU has). Everywhere else: the product with the
//! dequantized weight, which is the reference. The backward gives the activations'
//! gradient `g w` through the dequantized weight (the weight itself gets none).

use super::cpu::{qdot, storage};
use super::trace::{Impl, note};
use crate::quant::QTensor;
use crate::{DType, Device, Result, Tensor, no_grad};

/// `x (.., in) · wᵀ (+ bias (out,))` → `(.., out)`, untracked.
pub(crate) fn forward(x: &Tensor, w: &QTensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let [n, k] = [w.dims()[0], w.dims()[1]];
    if x.device() == Device::Cpu && x.dtype() == DType::F32 {
        let xc = x.contiguous()?;
        let bias_c = bias.map(Tensor::contiguous).transpose()?;
        let (px, pb) = (xc.prim(), bias_c.as_ref().map(Tensor::prim));
        let bias_ok = pb.as_ref().is_none_or(|p| storage::values(p).is_some());
        if let (Some(xs), true) = (storage::values(&px), bias_ok) {
            let m = xs.len() / k;
            let kernel = qdot::Kernel::detect();
            let mut out = vec![0f32; m * n];
            let bs = pb.as_ref().and_then(storage::values);
            qdot::qlinear(w.packed(), xs, m, bs, &mut out, kernel);
            let used = match kernel {
                qdot::Kernel::Vnni => Impl::CpuInt8Vnni,
                qdot::Kernel::Avx2 => Impl::CpuInt8Avx2,
                qdot::Kernel::Portable => Impl::CpuInt8,
            };
            note("qlinear", used);
            let mut shape = x.shape();
            *shape.last_mut().expect("rank >= 1") = n;
            return Ok(x.wrap(storage::from_vec(out, shape.clone()), shape));
        }
    }
    note("qlinear", Impl::Composed);
    let _guard = no_grad();
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
