//! Cross-entropy per row of logits, and its gradient.

use rayon::prelude::*;

use super::simd::{dot_by, exp, row_len, simd_kernel, sum};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

simd_kernel! {
    /// `(log Σ_j exp(x_j), mean_j x_j)` of one row.
    fn row_lse_and_mean(x: &[f32]) -> (f32, f32) {
        let mut max = f32::NEG_INFINITY;
        for &v in x {
            max = if v > max { v } else { max };
        }
        let total = dot_by(x, x, |v, _| exp(v - max));
        (max + total.ln(), sum(x) / x.len() as f32)
    }
}

/// Per-row cross-entropy of logits `(N, C)` against class indices (checked in range by the
/// caller), with label smoothing `eps`: `lse - (1-eps)·x_t - eps·mean(x)`; rows whose target is
/// `ignore` give 0.
pub(crate) fn cross_entropy_rows(
    logits: &Prim,
    targets: &[i64],
    ignore: i64,
    eps: f64,
) -> Option<Vec<f32>> {
    let xs = values(logits)?;
    let c = row_len(logits)?;
    if xs.len() != targets.len() * c {
        return None;
    }
    let eps = eps as f32;
    Some(
        xs.par_chunks(c)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                if t == ignore || t < 0 || t as usize >= c {
                    return 0.0;
                }
                let (lse, mean) = row_lse_and_mean(row);
                lse - (1.0 - eps) * row[t as usize] - eps * mean
            })
            .collect(),
    )
}

simd_kernel! {
    /// One row of the cross-entropy gradient: `s · (softmax(x) - (1-eps)·onehot(t) - eps/C)`.
    fn cross_entropy_grad_row(o: &mut [f32], x: &[f32], t: usize, s: f32, eps: f32) {
        let (lse, _) = row_lse_and_mean(x);
        let floor = eps / x.len() as f32;
        for (o, &v) in o.iter_mut().zip(x) {
            *o = s * (exp(v - lse) - floor);
        }
        o[t] -= s * (1.0 - eps);
    }
}

/// Gradient of the cross-entropy with respect to logits `(N, C)`, each row scaled by
/// `row_scale[i]` (the output gradient and the reduction; 0 for ignored rows).
pub(crate) fn cross_entropy_backward(
    logits: &Prim,
    targets: &[i64],
    row_scale: &[f32],
    eps: f64,
) -> Option<Prim> {
    let xs = values(logits)?;
    let c = row_len(logits)?;
    let n = targets.len();
    if xs.len() != n * c || row_scale.len() != n {
        return None;
    }
    let mut out = vec![0f32; xs.len()];
    out.par_chunks_mut(c)
        .zip(xs.par_chunks(c))
        .zip(targets.par_iter().zip(row_scale.par_iter()))
        .for_each(|((o, x), (&t, &s))| {
            if s != 0.0 && t >= 0 && (t as usize) < c {
                cross_entropy_grad_row(o, x, t as usize, s, eps as f32);
            }
        });
    Some(from_vec(out, logits.dims()))
}
