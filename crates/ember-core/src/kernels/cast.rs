//! Dtype conversions: bf16 ⇄ f32 on the CPU by Ember's vectorized loops (autocast converts
//! every weight and many activations), everything else by burn's cast.

use super::cpu::bf16;
use super::prim::{self, Prim};
use super::trace::{Impl, note};
use crate::{DType, Device, Result, Tensor};

/// `p` converted to `to` (float to int truncates toward zero; anything to bool is `x != 0`).
pub(crate) fn cast(p: Prim, to: DType) -> Prim {
    let fast = match (p.dtype(), to) {
        (DType::BF16, DType::F32) => bf16::widen(&p),
        (DType::F32, DType::BF16) => bf16::narrow(&p),
        _ => None,
    };
    if let Some(y) = fast {
        note("cast", Impl::CpuBf16);
        return y;
    }
    if p.dtype() != to {
        note("cast", Impl::Composed);
    }
    prim::cast(p, to)
}

/// `t` widened to f32 when it is bf16 on the CPU, where the f32 kernels then apply (the fused
/// ops compute bf16 in f32, as PyTorch's CPU kernels); `None` otherwise.
pub(crate) fn widened_bf16(t: &Tensor) -> Result<Option<Tensor>> {
    if t.dtype() != DType::BF16 || t.device() != Device::Cpu {
        return Ok(None);
    }
    t.to_dtype(DType::F32).map(Some)
}

/// The partner of a widened input (a gradient, a parameter, a mask) in f32 too: cast when it
/// is another float dtype, as it is when already f32; `None` stays `None`.
pub(crate) fn in_f32(t: Option<&Tensor>) -> Result<Option<Tensor>> {
    t.map(|t| t.to_dtype(DType::F32)).transpose()
}
