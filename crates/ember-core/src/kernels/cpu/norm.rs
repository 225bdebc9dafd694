//! Layer norm and RMS norm over the last dim, forward and backward.

use rayon::prelude::*;

use super::par::rows_per_task;
use super::simd::{dot_by, map_rows1, param, row_len, simd_kernel, sum};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// Mean and `1/√(var + eps)` of one row (biased variance, two passes as PyTorch).
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let mean = sum(x) / x.len() as f32;
    let var = dot_by(x, x, |a, _| (a - mean) * (a - mean)) / x.len() as f32;
    (mean, 1.0 / (var + eps).sqrt())
}

simd_kernel! {
    /// Layer norm of the rows (length `d`) of `x` into `o`; weight and bias as ones and zeros
    /// when empty.
    fn layer_norm_rows(o: &mut [f32], x: &[f32], w: &[f32], b: &[f32], d: usize, eps: f32) {
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let (mean, rstd) = row_stats(x, eps);
            match (w.is_empty(), b.is_empty()) {
                (false, false) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                }
                (false, true) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd * w[i];
                    }
                }
                (true, false) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd + b[i];
                    }
                }
                (true, true) => {
                    for i in 0..d {
                        o[i] = (x[i] - mean) * rstd;
                    }
                }
            }
        }
    }
}

/// Layer norm over the last dim with optional `(D,)` weight and bias.
pub(crate) fn layer_norm(x: &Prim, w: Option<&Prim>, b: Option<&Prim>, eps: f64) -> Option<Prim> {
    let d = row_len(x)?;
    let w = param(w, d)?.unwrap_or(&[]);
    let b = param(b, d)?.unwrap_or(&[]);
    map_rows1(x, |o, x| layer_norm_rows(o, x, w, b, d, eps as f32))
}

simd_kernel! {
    /// Layer-norm gradients of the rows of `x`: `dx` written, `g·x̂` and `g` added to `dw`, `db`.
    fn layer_norm_backward_rows(
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
        x: &[f32],
        g: &[f32],
        w: &[f32],
        d: usize,
        eps: f32,
    ) {
        for ((dx, x), g) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let (mean, rstd) = row_stats(x, eps);
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                dw[i] += g[i] * xhat;
                db[i] += g[i];
                // dx holds g·w for the second pass.
                dx[i] = if w.is_empty() { g[i] } else { g[i] * w[i] };
            }
            let m1 = sum(dx) / d as f32; // mean(g·w)
            let m2 = dot_by(dx, x, |gw, x| gw * (x - mean)) * rstd / d as f32; // mean(g·w·x̂)
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                dx[i] = rstd * (dx[i] - m1 - xhat * m2);
            }
        }
    }
}

/// Runs `rows(dx, dw, db, x, g)` over parallel blocks of whole rows of `x` and `g` (same
/// shape); each block adds into its own partial `(dw, db)` sums of length `d`, added up after.
/// Returns `(dx, dw, db)`.
#[allow(clippy::type_complexity)]
fn backward_blocks(
    x: &Prim,
    g: &Prim,
    d: usize,
    rows: impl Fn(&mut [f32], &mut [f32], &mut [f32], &[f32], &[f32]) + Sync,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (xs, gs) = (values(x)?, values(g)?);
    if x.dims() != g.dims() {
        return None;
    }
    let mut dx = vec![0f32; xs.len()];
    let step = rows_per_task(d) * d;
    let (dw, db) = dx
        .par_chunks_mut(step)
        .zip(xs.par_chunks(step).zip(gs.par_chunks(step)))
        .map(|(dx, (x, g))| {
            let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
            rows(dx, &mut dw, &mut db, x, g);
            (dw, db)
        })
        .reduce(
            || (vec![0f32; d], vec![0f32; d]),
            |(mut aw, mut ab), (bw, bb)| {
                aw.iter_mut().zip(&bw).for_each(|(a, b)| *a += b);
                ab.iter_mut().zip(&bb).for_each(|(a, b)| *a += b);
                (aw, ab)
            },
        );
    Some((dx, dw, db))
}

/// Gradients of layer norm: `(dx, dweight, dbias)`, the last two when `w`/`has_bias` say the
/// op had them.
pub(crate) fn layer_norm_backward(
    x: &Prim,
    w: Option<&Prim>,
    has_bias: bool,
    g: &Prim,
    eps: f64,
) -> Option<(Prim, Option<Prim>, Option<Prim>)> {
    let d = row_len(x)?;
    let w = param(w, d)?;
    let ws = w.unwrap_or(&[]);
    let (dx, dw, db) = backward_blocks(x, g, d, |dx, dw, db, x, g| {
        layer_norm_backward_rows(dx, dw, db, x, g, ws, d, eps as f32)
    })?;
    let dw = w.map(|_| from_vec(dw, vec![d]));
    let db = has_bias.then(|| from_vec(db, vec![d]));
    Some((from_vec(dx, x.dims()), dw, db))
}

simd_kernel! {
    /// RMS norm of the rows (length `d`) of `x` into `o`: `x / √(mean(x²) + eps) · w` (no
    /// weight when `w` is empty).
    fn rms_norm_rows(o: &mut [f32], x: &[f32], w: &[f32], d: usize, eps: f32) {
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let r = 1.0 / (dot_by(x, x, |a, b| a * b) / d as f32 + eps).sqrt();
            if w.is_empty() {
                for i in 0..d {
                    o[i] = x[i] * r;
                }
            } else {
                for i in 0..d {
                    o[i] = x[i] * r * w[i];
                }
            }
        }
    }
}

/// RMS norm over the last dim with an optional `(D,)` weight.
pub(crate) fn rms_norm(x: &Prim, w: Option<&Prim>, eps: f64) -> Option<Prim> {
    let d = row_len(x)?;
    let w = param(w, d)?.unwrap_or(&[]);
    map_rows1(x, |o, x| rms_norm_rows(o, x, w, d, eps as f32))
}

simd_kernel! {
    /// RMS-norm gradients of the rows of `x`: `dx` written, `g·x·r` added to `dw`.
    fn rms_norm_backward_rows(
        dx: &mut [f32],
        dw: &mut [f32],
        x: &[f32],
        g: &[f32],
        w: &[f32],
        d: usize,
        eps: f32,
    ) {
        for ((dx, x), g) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let r = 1.0 / (dot_by(x, x, |a, b| a * b) / d as f32 + eps).sqrt();
            for i in 0..d {
                dw[i] += g[i] * x[i] * r;
                // dx holds g·w for the second pass.
                dx[i] = if w.is_empty() { g[i] } else { g[i] * w[i] };
            }
            let dot = dot_by(dx, x, |gw, x| gw * x) / d as f32; // mean(g·w·x)
            let r3 = r * r * r;
            for i in 0..d {
                dx[i] = dx[i] * r - x[i] * r3 * dot;
            }
        }
    }
}

/// Gradients of RMS norm: `(dx, dweight)`, the second when `w` says the op had a weight.
pub(crate) fn rms_norm_backward(
    x: &Prim,
    w: Option<&Prim>,
    g: &Prim,
    eps: f64,
) -> Option<(Prim, Option<Prim>)> {
    let d = row_len(x)?;
    let w = param(w, d)?;
    let ws = w.unwrap_or(&[]);
    let (dx, dw, _) = backward_blocks(x, g, d, |dx, dw, _, x, g| {
        rms_norm_backward_rows(dx, dw, x, g, ws, d, eps as f32)
    })?;
    let dw = w.map(|_| from_vec(dw, vec![d]));
    Some((from_vec(dx, x.dims()), dw))
}
