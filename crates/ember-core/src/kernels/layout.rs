//! Where a primitive's data lies: reshapes that keep views, and the buffer a view reads.
//!
//! On the CPU a reshape of a strided tensor becomes a view wherever PyTorch's `view` rule
//! allows (`cpu::storage::reshape_view`; burn-flex would copy it, e.g. a transposed weight on
//! every product); elsewhere burn's reshape.

use super::cpu::storage;
use super::prim::{self, Prim};

/// `p` with the same elements in `shape`: the same handle for an unchanged shape, a view of
/// the same storage where the layout allows, else burn's reshape.
pub(crate) fn reshape(p: Prim, shape: &[usize]) -> Prim {
    if p.dims() == shape {
        return p;
    }
    if let Some(view) = storage::reshape_view(&p, shape) {
        return view;
    }
    prim::reshape(p, shape)
}

/// The storage `p` views, as its address and length in bytes (equal for views of one
/// buffer); `None` where the backend does not expose it (GPUs).
pub(crate) fn buffer(p: &Prim) -> Option<(usize, u64)> {
    storage::buffer(p)
}
