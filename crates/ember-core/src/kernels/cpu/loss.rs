//! Cross-entropy per row of logits, and its gradient: f32 logits, or bf16 logits read row by
//! row into f32 (the loss and the gradient are computed in f32 either way, as PyTorch's
//! autocast computes losses).

use rayon::prelude::*;

use super::bf16::{contiguous_bits, from_bits, narrow_into, widen_slice};
use super::simd::{dot_by, exp, row_len, simd_kernel, sum};
use super::storage::{from_vec, values};
use crate::kernels::prim::Prim;

/// The rows of contiguous CPU logits, f32 or bf16.
#[derive(Clone, Copy)]
enum Logits<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

impl<'a> Logits<'a> {
    fn of(p: &'a Prim) -> Option<(Logits<'a>, usize)> {
        let c = row_len(p)?;
        if let Some(v) = values(p) {
            return Some((Logits::F32(v), c));
        }
        Some((Logits::Bf16(contiguous_bits(p)?), c))
    }

    fn len(&self) -> usize {
        match self {
            Logits::F32(v) => v.len(),
            Logits::Bf16(v) => v.len(),
        }
    }

    /// Row `i` of `c` values in f32: borrowed, or widened into `buf`.
    fn row<'b>(&'b self, i: usize, c: usize, buf: &'b mut Vec<f32>) -> &'b [f32] {
        match self {
            Logits::F32(v) => &v[i * c..(i + 1) * c],
            Logits::Bf16(v) => {
                buf.resize(c, 0.0);
                widen_slice(buf, &v[i * c..(i + 1) * c]);
                &buf[..c]
            }
        }
    }
}

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
    let (xs, c) = Logits::of(logits)?;
    if xs.len() != targets.len() * c {
        return None;
    }
    let eps = eps as f32;
    Some(
        targets
            .par_iter()
            .enumerate()
            .map_init(Vec::new, |buf, (i, &t)| {
                if t == ignore || t < 0 || t as usize >= c {
                    return 0.0;
                }
                let row = xs.row(i, c, buf);
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
/// `row_scale[i]` (the output gradient and the reduction; 0 for ignored rows), in the logits'
/// dtype (computed in f32, rounded once for bf16).
pub(crate) fn cross_entropy_backward(
    logits: &Prim,
    targets: &[i64],
    row_scale: &[f32],
    eps: f64,
) -> Option<Prim> {
    let (xs, c) = Logits::of(logits)?;
    let n = targets.len();
    if xs.len() != n * c || row_scale.len() != n {
        return None;
    }
    let grad_row = |i: usize, o: &mut [f32], buf: &mut Vec<f32>| {
        let (t, s) = (targets[i], row_scale[i]);
        if s != 0.0 && t >= 0 && (t as usize) < c {
            cross_entropy_grad_row(o, xs.row(i, c, buf), t as usize, s, eps as f32);
        } else {
            o.fill(0.0);
        }
    };
    match xs {
        Logits::F32(_) => {
            let mut out = vec![0f32; n * c];
            out.par_chunks_mut(c)
                .enumerate()
                .for_each_init(Vec::new, |buf, (i, o)| grad_row(i, o, buf));
            Some(from_vec(out, logits.dims()))
        }
        Logits::Bf16(_) => {
            let mut out: Vec<u16> = Vec::with_capacity(n * c);
            out.spare_capacity_mut()[..n * c]
                .par_chunks_mut(c)
                .enumerate()
                .for_each_init(
                    || (Vec::new(), vec![0f32; c]),
                    |(buf, row), (i, o)| {
                        grad_row(i, row, buf);
                        narrow_into(o, row);
                    },
                );
            // SAFETY: every row was written by `narrow_into`.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels.rs and tests/kernels_bf16.rs (cross-entropy).
            unsafe { out.set_len(n * c) };
            Some(from_bits(out, logits.dims()))
        }
    }
}
