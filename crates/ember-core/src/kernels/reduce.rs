//! Reductions over dims: the primitives of the reduction table (`base/tables/reduce.rs`),
//! burn's keep-dim reductions one dim at a time; a mean sums every dim, then divides once.
//! bf16 sums and means on the CPU are widened to f32 first, so they accumulate in f32 and
//! round once (as PyTorch's; a bias gradient sums 512 rows). Also `logsumexp`, shifted by the
//! max.

use burn_backend::ops::{FloatTensorOps, IntTensorOps};
use burn_dispatch::Dispatch as B;

use super::cpu::bf16;
use super::prim::{self, Prim};
use super::trace::{Impl, note};
use crate::base::tables::reduce::reduce_table;
use crate::{BinaryFn, DType, ReduceFn, Result, Tensor, UnaryFn};

macro_rules! reduce_prims {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $int:expr, $float:expr);
    )+) => {
        impl ReduceFn {
            /// Reduces `dim` of a validated primitive to size 1.
            pub(crate) fn prim(self, p: Prim, dim: usize) -> Prim {
                match self {
                    $(ReduceFn::$variant => prim::reduce_dim(p, dim, $int, $float),)+
                }
            }
        }
    };
}

reduce_table!(reduce_prims);

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

/// `log(Σ exp(p))` over `dims` of a float primitive, kept as size 1: shifted by the max, with
/// infinite maxima replaced by 0 so `p - m` never makes NaN.
pub(crate) fn logsumexp(p: Prim, dims: &[usize]) -> Prim {
    let mut m = p.clone();
    for &d in dims {
        m = ReduceFn::Max.prim(m, d);
    }
    let inf = UnaryFn::Abs.prim(m.clone());
    let is_inf = prim::compare_scalar(inf, f64::INFINITY, B::int_equal_elem, B::float_equal_elem);
    let m = prim::mask_fill(m, is_inf, 0.0);
    let mut s = UnaryFn::Exp.prim(BinaryFn::Sub.prim(p, m.clone()));
    for &d in dims {
        s = ReduceFn::Sum.prim(s, d);
    }
    BinaryFn::Add.prim(UnaryFn::Log.prim(s), m)
}

/// `g` summed over the dims that broadcasting added, back to `shape`.
pub(crate) fn sum_to(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.dims() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let mut dims: Vec<isize> = (0..lead as isize).collect();
    for (i, &s) in shape.iter().enumerate() {
        if s == 1 && g.dims()[lead + i] != 1 {
            dims.push((lead + i) as isize);
        }
    }
    let summed = if dims.is_empty() {
        g.clone()
    } else {
        g.sum(&dims, true)?
    };
    summed.reshape_to(shape)
}
