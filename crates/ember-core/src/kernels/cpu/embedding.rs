//! The embedding gradient: output-gradient rows added at their ids.

use super::simd::row_len;
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// The gradient of `index_select(x, 0, idx)` for a 2-D `x` with `rows` rows: `g (len(idx), D)`
/// added into zeros at the selected rows (an embedding's backward). Indices out of range
/// decline.
pub(crate) fn index_rows_backward(rows: usize, idx: &[i64], g: &Prim) -> Option<Prim> {
    let gs = values(g)?;
    let d = row_len(g)?;
    if gs.len() != idx.len() * d || idx.iter().any(|&i| i < 0 || i as usize >= rows) {
        return None;
    }
    let mut out = vec![0f32; rows * d];
    for (&i, row) in idx.iter().zip(gs.chunks_exact(d)) {
        let dst = &mut out[i as usize * d..(i as usize + 1) * d];
        dst.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
    Some(from_vec(out, vec![rows, d]))
}
