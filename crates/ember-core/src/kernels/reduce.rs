//! Reductions over dims (the `ReduceFn` table): burn's keep-dim reductions, one dim at a time;
//! a mean sums every dim, then divides once. bf16 sums and means on the CPU are widened to f32
//! first, so they accumulate in f32 and round once (as PyTorch's; a bias gradient sums 512
//! rows).

use super::cpu::bf16;
use super::prim::{self, Prim};
use super::trace::{Impl, note};
use crate::{BinaryFn, DType, ReduceFn};

/// `f` over `dims` of `p`, keeping them as size 1.
pub(crate) fn reduce(f: ReduceFn, p: Prim, dims: &[usize]) -> Prim {
    let sums = matches!(f, ReduceFn::Sum | ReduceFn::Mean);
    if sums
        && p.dtype() == DType::BF16
        && let Some(wide) = bf16::widen(&p)
    {
        note("reduce", Impl::CpuBf16ViaF32);
        let y = composed(f, wide, dims);
        return bf16::narrow(&y).unwrap_or_else(|| prim::cast(y, DType::BF16));
    }
    note("reduce", Impl::Composed);
    composed(f, p, dims)
}

fn composed(f: ReduceFn, mut p: Prim, dims: &[usize]) -> Prim {
    if f == ReduceFn::Mean {
        let shape = p.dims();
        for &d in dims {
            p = ReduceFn::Sum.prim(p, d);
        }
        let n: usize = dims.iter().map(|&d| shape[d]).product();
        return BinaryFn::Div.prim_scalar(p, n as f64);
    }
    for &d in dims {
        p = f.prim(p, d);
    }
    p
}
