//! Softmax rows: attention's scaled, causal softmax in place (with or without an additive
//! mask), the softmax backward, and log-softmax forward and backward.

use rayon::prelude::*;

use super::par::rows_per_task;
use super::simd::{dot_by, exp, map_rows1, map_rows2, row_len, simd_kernel, sum};
use super::storage::{Rows4, owned, unique_values, wrap};
use crate::kernels::prim::Prim;

simd_kernel! {
    fn softmax_backward_rows(o: &mut [f32], p: &[f32], g: &[f32], d: usize, scale: f32) {
        for ((o, p), g) in o.chunks_exact_mut(d).zip(p.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let dot = dot_by(p, g, |a, b| a * b);
            for i in 0..d {
                o[i] = scale * p[i] * (g[i] - dot);
            }
        }
    }
}

/// The softmax backward along the last dim, times `scale`: `scale · p · (gp - Σ gp·p)` per row.
pub(crate) fn softmax_backward(p: &Prim, gp: &Prim, scale: f64) -> Option<Prim> {
    let d = row_len(p)?;
    map_rows2(p, gp, |o, p, g| {
        softmax_backward_rows(o, p, g, d, scale as f32)
    })
}

simd_kernel! {
    /// `x - log Σ exp(x)` per row of length `d`.
    fn log_softmax_rows(o: &mut [f32], x: &[f32], d: usize) {
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let mut max = f32::NEG_INFINITY;
            for &v in x {
                max = if v > max { v } else { max };
            }
            let lse = max + dot_by(x, x, |v, _| exp(v - max)).ln();
            for i in 0..d {
                o[i] = x[i] - lse;
            }
        }
    }
}

/// Log-softmax along the last dim.
pub(crate) fn log_softmax(x: &Prim) -> Option<Prim> {
    let d = row_len(x)?;
    map_rows1(x, |o, x| log_softmax_rows(o, x, d))
}

simd_kernel! {
    /// `g - exp(y) · Σ g` per row of length `d` (`y` the log-softmax output).
    fn log_softmax_backward_rows(o: &mut [f32], y: &[f32], g: &[f32], d: usize) {
        for ((o, y), g) in o.chunks_exact_mut(d).zip(y.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let total = sum(g);
            for i in 0..d {
                o[i] = g[i] - exp(y[i]) * total;
            }
        }
    }
}

/// The log-softmax backward along the last dim, from the output `y`.
pub(crate) fn log_softmax_backward(y: &Prim, g: &Prim) -> Option<Prim> {
    let d = row_len(y)?;
    map_rows2(y, g, |o, y, g| log_softmax_backward_rows(o, y, g, d))
}

simd_kernel! {
    /// In place on rows `row0..` of length `d` of scores `(.., H, Tq, d)`: `softmax(scale · x
    /// + mask)` (no mask: `softmax(scale · x)`), with keys after the query masked out when
    /// `causal` (query `q = row % tq` sees keys `j <= q`, PyTorch's `is_causal`); `mask` is
    /// read at each row's `(b, h, q)`.
    fn softmax_rows(
        x: &mut [f32],
        d: usize,
        scale: f32,
        causal: bool,
        heads_queries: [usize; 2],
        row0: usize,
        mask: Option<&Rows4>,
    ) {
        let [h, tq] = heads_queries;
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let (r, q) = (row0 + r, (row0 + r) % tq);
            let seen = if causal { (q + 1).min(d) } else { d };
            let (live, masked) = row.split_at_mut(seen);
            let mut max = f32::NEG_INFINITY;
            match mask {
                Some(m) => {
                    for (v, &m) in live.iter_mut().zip(m.row(r / (h * tq), r / tq % h, q)) {
                        *v = *v * scale + m;
                        max = if *v > max { *v } else { max };
                    }
                }
                None => {
                    for v in live.iter_mut() {
                        *v *= scale;
                        max = if *v > max { *v } else { max };
                    }
                }
            }
            for v in live.iter_mut() {
                *v = exp(*v - max);
            }
            let inv = 1.0 / sum(live);
            for v in live.iter_mut() {
                *v *= inv;
            }
            masked.fill(0.0);
        }
    }
}

/// Softmax over the last dim of `scale · x + mask` (no mask: `scale · x`), optionally causal
/// with queries on the second-to-last dim; in place when nothing else holds `x` (as the fresh
/// scores of a GEMM). The additive `mask` is read in place, broadcast to `x`'s shape, which
/// must then be rank 4 `(B, H, Tq, Tk)` (zero strides where it broadcasts). `x` comes back in
/// `Err` when the kernel does not apply.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn scaled_softmax(
    x: Prim,
    scale: f64,
    causal: bool,
    mask: Option<&Rows4>,
) -> Result<Prim, Prim> {
    let dims = x.dims();
    let Some(d) = row_len(&x) else { return Err(x) };
    if mask.is_some_and(|m| m.dims.as_slice() != dims.as_slice()) {
        return Err(x);
    }
    let tq = if dims.len() >= 2 {
        dims[dims.len() - 2]
    } else {
        1
    };
    let h = mask.map_or(1, |m| m.dims[1]);
    let mut t = owned(x)?;
    let Some(vals) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    let (rows, scale) = (rows_per_task(d), scale as f32);
    if vals.len() <= rows * d {
        softmax_rows(vals, d, scale, causal, [h, tq], 0, mask);
    } else {
        vals.par_chunks_mut(rows * d)
            .enumerate()
            .for_each(|(i, chunk)| softmax_rows(chunk, d, scale, causal, [h, tq], i * rows, mask));
    }
    Ok(wrap(t))
}
