//! bf16 products with at most `FEW_ROWS` rows (decoding): `b` streamed once over the threads,
//! widened to f32 as it is read, `a` widened up front; memory-bound, so f32 FMAs suffice.

use rayon::prelude::*;

use super::bf16::to_f32;
use super::gemm_bf16::Mat;
use super::simd::simd_kernel;

simd_kernel! {
    /// `y[i, :] += Σ_{p < rows} a[i, p0 + p] · b[p·ld ..][..n]` for bf16 rows of `b`.
    fn few_by_rows(y: &mut [f32], a: &[f32], b: &[u16], k: usize, n: usize, ld: usize, p0: usize, rows: usize) {
        for (yi, ai) in y.chunks_exact_mut(n).zip(a.chunks_exact(k)) {
            for p in 0..rows {
                let ap = ai[p0 + p];
                for (o, &bv) in yi.iter_mut().zip(&b[p * ld..p * ld + n]) {
                    *o += ap * to_f32(bv);
                }
            }
        }
    }
}

simd_kernel! {
    /// `y[i, j] = a[i, :] · col_j` for the bf16 columns `bt[(j0 + j)·ld ..][..k]`.
    fn few_by_cols(y: &mut [f32], a: &[f32], bt: &[u16], k: usize, ld: usize, j0: usize) {
        let w = y.len() / (a.len() / k);
        for (yi, ai) in y.chunks_exact_mut(w).zip(a.chunks_exact(k)) {
            for (j, o) in yi.iter_mut().enumerate() {
                let col = &bt[(j0 + j) * ld..(j0 + j) * ld + k];
                let mut lanes = [0f32; 16];
                let (ca, cb) = (ai.chunks_exact(16), col.chunks_exact(16));
                let (ra, rb) = (ca.remainder(), cb.remainder());
                for (x, w) in ca.zip(cb) {
                    for l in 0..16 {
                        lanes[l] += x[l] * to_f32(w[l]);
                    }
                }
                let tail: f32 = ra.iter().zip(rb).map(|(x, &w)| x * to_f32(w)).sum();
                *o = lanes.iter().sum::<f32>() + tail;
            }
        }
    }
}

/// `a (m, k) @ b (k, n)` for at most `FEW_ROWS` rows: `b` streamed once over the threads
/// (rows of `b` by ranges, or columns of `b` by blocks), `a` widened to f32.
pub(crate) fn few_rows(a: &Mat, b: &Mat, [m, k, n]: [usize; 3]) -> Vec<f32> {
    let av: Vec<f32> = (0..m * k).map(|e| to_f32(a.at(e / k, e % k))).collect();
    if b.cs == 1 {
        let tasks = rayon::current_num_threads() * 2;
        let rows = k.div_ceil(tasks).max(16);
        (0..k)
            .into_par_iter()
            .step_by(rows)
            .map(|p0| {
                let r = rows.min(k - p0);
                let mut y = vec![0f32; m * n];
                let block = &b.s[b.off + p0 * b.rs..][..(r - 1) * b.rs + n];
                few_by_rows(&mut y, &av, block, k, n, b.rs, p0, r);
                y
            })
            .reduce(
                || vec![0f32; m * n],
                |mut acc, part| {
                    acc.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                    acc
                },
            )
    } else {
        let tasks = rayon::current_num_threads() * 4;
        let w = n.div_ceil(tasks).next_multiple_of(16).max(64).min(n);
        let cols = &b.s[b.off..][..(n - 1) * b.cs + k];
        let parts: Vec<(usize, Vec<f32>)> = (0..n)
            .into_par_iter()
            .step_by(w)
            .map(|j0| {
                let mut y = vec![0f32; m * w.min(n - j0)];
                few_by_cols(&mut y, &av, cols, k, b.cs, j0);
                (j0, y)
            })
            .collect();
        let mut out = vec![0f32; m * n];
        for (j0, part) in parts {
            let bw = part.len() / m;
            for i in 0..m {
                out[i * n + j0..i * n + j0 + bw].copy_from_slice(&part[i * bw..(i + 1) * bw]);
            }
        }
        out
    }
}
