//! Products of f32 CPU activations with a quantized weight: the storage read in place and
//! handed to the integer kernels (`gemm::int8`, over the weight repacked by
//! `gemm::pack_int8`).

use super::amx;
use super::gemm::pack_int8::Packed;
use super::gemm::{FEW_ROWS, int8};
use super::isa::{Int8Dot, int8_dot};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// `x (.., k) · wᵀ (+ bias (n,))` → `(.., n)` (`out_dims`) for contiguous f32 CPU `x` and
/// `bias`, with the integer kernel it ran; `None` when they are not.
pub(crate) fn qlinear(
    x: &Prim,
    w: &Packed,
    bias: Option<&Prim>,
    out_dims: Vec<usize>,
) -> Option<(Prim, Int8Dot)> {
    let xs = values(x)?;
    let bs = match bias {
        Some(b) => Some(values(b)?),
        None => None,
    };
    let (n, k) = (w.rows, w.cols);
    let m = xs.len() / k;
    let kernel = match amx::int8_backend() {
        Some(backend) if m > FEW_ROWS => Int8Dot::Amx(backend),
        _ => int8_dot(),
    };
    let mut out = vec![0f32; m * n];
    int8::qlinear(w, xs, m, bs, &mut out, kernel);
    Some((from_vec(out, out_dims), kernel))
}
