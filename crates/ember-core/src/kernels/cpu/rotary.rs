//! Rotary position embedding in one pass: `x·cos + rotate_half(x)·sin` over rows of a
//! `(B, H, T, D)` view (the heads of a projection, read in place).

use super::storage::{Rows4, from_vec};
use crate::kernels::prim::Prim;

/// `y` contiguous `(B, H, T, D)` for `x` `(B, H, T, D)` (any strides with a contiguous last
/// dim) and tables `cos`, `sin` `(T, D)`; `None` when it does not apply. The products and
/// sums are those of the composed definition, in the same order.
pub(crate) fn rotary(x: &Prim, cos: &[f32], sin: &[f32]) -> Option<Prim> {
    let xr = Rows4::of(x)?;
    let [b, h, t, d] = xr.dims;
    if d % 2 != 0 || cos.len() != t * d || sin.len() != t * d {
        return None;
    }
    let half = d / 2;
    let mut out = vec![0f32; b * h * t * d];
    for (r, o) in out.chunks_exact_mut(d.max(1)).enumerate() {
        let (bi, hi, ti) = (r / (h * t), r / t % h, r % t);
        let x = xr.row(bi, hi, ti);
        let (c, s) = (&cos[ti * d..(ti + 1) * d], &sin[ti * d..(ti + 1) * d]);
        let (o1, o2) = o.split_at_mut(half);
        let (x1, x2) = x.split_at(half);
        for i in 0..half {
            // (x₁, x₂)·cos + (-x₂, x₁)·sin
            o1[i] = x1[i] * c[i] + (-x2[i]) * s[i];
            o2[i] = x2[i] * c[half + i] + x1[i] * s[half + i];
        }
    }
    Some(from_vec(out, vec![b, h, t, d]))
}
