//! The gradient of `index_select` (an embedding lookup's backward): the output gradient's rows
//! added into zeros at their indices.
//!
//! f32 on the CPU, rows of a matrix: one pass adding rows (`cpu::embedding`). Elsewhere: a
//! `scatter_add` into zeros, which is the reference.

use super::cpu::embedding as cpu;
use super::trace::{Impl, note};
use crate::{Result, Tensor};

/// The gradient of `x.index_select(dim, idx)` given the output gradient `g`.
pub(crate) fn index_select_backward(
    x: &Tensor,
    dim: usize,
    idx: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    if dim == 0 && x.rank() == 2 && super::cpu::storage::applies(&[&g.prim()]) {
        let ids = idx.to_vec::<i64>()?;
        if let Some(p) = cpu::index_rows_backward(x.dims()[0], &ids, &g.prim()) {
            note("index_select_backward", Impl::CpuF32);
            return Ok(g.wrap(p, x.shape()));
        }
    }
    note("index_select_backward", Impl::Composed);
    let mut shape = vec![1; g.rank()];
    shape[dim] = idx.numel();
    let spread = idx.reshape_to(&shape)?.broadcast_to(g.dims())?; // idx along `dim`
    Tensor::zeros(x.dims(), g.dtype(), g.device())?.scatter_add(dim as isize, &spread, g)
}
