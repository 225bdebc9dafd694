//! Products `a (m, k) @ b (k, n)` with at most `FEW_ROWS` rows (decoding): `b` streamed once
//! over the threads, by ranges of its rows (row-major `b`) or by blocks of its columns (a
//! transposed `b`: a `Linear` weight), without packing it. Memory-bound, so f32 FMAs suffice
//! for every element type: `a` comes widened to f32, `b` is widened as it is read
//! ([`Lane`]: f32 as it is, bf16 by a shift).

use rayon::prelude::*;

use super::super::bf16::to_f32;
use super::super::par::{scatter_columns, stream_cols_per_task, stream_rows_per_task};
use super::super::simd::{dot_by, simd_kernel};
use super::Mat;

/// An element of a streamed `b`, read as f32; each type runs its own compiled kernels.
pub(crate) trait Lane: Copy + Sync {
    /// The value as f32.
    fn f32(self) -> f32;

    /// `Σ a_i · b_i` in f32 (16 lanes; inlined into the compiled kernels).
    fn dot(a: &[f32], b: &[Self]) -> f32;

    /// `y[i, :] += Σ_{p < rows} a[i, p0 + p] · b[p·ld ..][..n]` for every row `i` of `y`
    /// (`(m, n)`) and `a` (`(m, k)`).
    #[allow(clippy::too_many_arguments)]
    fn by_rows(
        y: &mut [f32],
        a: &[f32],
        b: &[Self],
        k: usize,
        n: usize,
        ld: usize,
        p0: usize,
        rows: usize,
    );

    /// `y[i, j] = a[i, :] · b[(j0 + j)·ld ..][..k]` for `y` `(m, w)`: the columns `j0..j0 + w`
    /// of a transposed `b` whose columns lie `ld` apart.
    fn by_cols(y: &mut [f32], a: &[f32], bt: &[Self], k: usize, ld: usize, j0: usize);
}

/// Bodies of the kernels, compiled for each extension and element type by the wrappers below.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn by_rows_body<E: Lane>(
    y: &mut [f32],
    a: &[f32],
    b: &[E],
    k: usize,
    n: usize,
    ld: usize,
    p0: usize,
    rows: usize,
) {
    for (yi, ai) in y.chunks_exact_mut(n).zip(a.chunks_exact(k)) {
        for p in 0..rows {
            let ap = ai[p0 + p];
            for (o, &bv) in yi.iter_mut().zip(&b[p * ld..p * ld + n]) {
                *o += ap * bv.f32();
            }
        }
    }
}

#[inline(always)]
fn by_cols_body<E: Lane>(y: &mut [f32], a: &[f32], bt: &[E], k: usize, ld: usize, j0: usize) {
    let w = y.len() / (a.len() / k);
    for (yi, ai) in y.chunks_exact_mut(w).zip(a.chunks_exact(k)) {
        for (j, o) in yi.iter_mut().enumerate() {
            *o = E::dot(ai, &bt[(j0 + j) * ld..(j0 + j) * ld + k]);
        }
    }
}

simd_kernel! {
    fn by_rows_f32(y: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize, ld: usize, p0: usize, rows: usize) {
        by_rows_body(y, a, b, k, n, ld, p0, rows)
    }
}

simd_kernel! {
    fn by_cols_f32(y: &mut [f32], a: &[f32], bt: &[f32], k: usize, ld: usize, j0: usize) {
        by_cols_body(y, a, bt, k, ld, j0)
    }
}

simd_kernel! {
    fn by_rows_bf16(y: &mut [f32], a: &[f32], b: &[u16], k: usize, n: usize, ld: usize, p0: usize, rows: usize) {
        by_rows_body(y, a, b, k, n, ld, p0, rows)
    }
}

simd_kernel! {
    fn by_cols_bf16(y: &mut [f32], a: &[f32], bt: &[u16], k: usize, ld: usize, j0: usize) {
        by_cols_body(y, a, bt, k, ld, j0)
    }
}

impl Lane for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dot_by(a, b, |x, y| x * y)
    }

    fn by_rows(
        y: &mut [f32],
        a: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        ld: usize,
        p0: usize,
        rows: usize,
    ) {
        by_rows_f32(y, a, b, k, n, ld, p0, rows)
    }

    fn by_cols(y: &mut [f32], a: &[f32], bt: &[f32], k: usize, ld: usize, j0: usize) {
        by_cols_f32(y, a, bt, k, ld, j0)
    }
}

/// bf16, as its raw bits.
impl Lane for u16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        to_f32(self)
    }

    /// 16 lanes widened as they are read, then summed in order, so LLVM widens a whole
    /// vector at once (`vpmovzxwd` + shift).
    #[inline(always)]
    fn dot(a: &[f32], b: &[u16]) -> f32 {
        let mut lanes = [0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, w) in ca.zip(cb) {
            for l in 0..16 {
                lanes[l] += x[l] * to_f32(w[l]);
            }
        }
        let tail: f32 = ra.iter().zip(rb).map(|(x, &w)| x * to_f32(w)).sum();
        lanes.iter().sum::<f32>() + tail
    }

    fn by_rows(
        y: &mut [f32],
        a: &[f32],
        b: &[u16],
        k: usize,
        n: usize,
        ld: usize,
        p0: usize,
        rows: usize,
    ) {
        by_rows_bf16(y, a, b, k, n, ld, p0, rows)
    }

    fn by_cols(y: &mut [f32], a: &[f32], bt: &[u16], k: usize, ld: usize, j0: usize) {
        by_cols_bf16(y, a, bt, k, ld, j0)
    }
}

/// `a (m, k) @ b (k, n)` for a row-major f32 `a` (`m <= FEW_ROWS`) and a `b` with a unit
/// column stride (rows) or a unit row stride (a transpose), over the threads: ranges of `b`'s
/// rows with their partial sums added, or blocks of its columns each reading its own rows of
/// `bᵀ`. `None` for other layouts of `b`.
pub(crate) fn few_rows<E: Lane>(a: &[f32], b: &Mat<E>, [m, k, n]: [usize; 3]) -> Option<Vec<f32>> {
    if b.cs == 1 {
        let rows = stream_rows_per_task(k);
        (0..k)
            .into_par_iter()
            .step_by(rows)
            .map(|p0| {
                let r = rows.min(k - p0);
                let mut y = vec![0f32; m * n];
                let block = &b.s[b.off + p0 * b.rs..][..(r - 1) * b.rs + n];
                E::by_rows(&mut y, a, block, k, n, b.rs, p0, r);
                y
            })
            .reduce_with(|mut acc, part| {
                acc.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                acc
            })
    } else if b.rs == 1 {
        let w = stream_cols_per_task(n);
        let cols = &b.s[b.off..][..(n - 1) * b.cs + k];
        let parts: Vec<(usize, Vec<f32>)> = (0..n)
            .into_par_iter()
            .step_by(w)
            .map(|j0| {
                let mut y = vec![0f32; m * w.min(n - j0)];
                E::by_cols(&mut y, a, cols, k, b.cs, j0);
                (j0, y)
            })
            .collect();
        Some(scatter_columns(&parts, m, n))
    } else {
        None
    }
}

/// One small product `a (m, k) @ b (k, n)` on the calling thread, into `y` (`(m, n)`, zeroed):
/// for batches of decode-sized products (attention over a KV cache), one per task. `false`
/// for layouts of `b` without a unit stride.
pub(crate) fn few_rows_one<E: Lane>(
    y: &mut [f32],
    a: &[f32],
    b: &Mat<E>,
    [k, n]: [usize; 2],
) -> bool {
    if b.cs == 1 {
        let rows = &b.s[b.off..b.off + (k - 1) * b.rs + n];
        E::by_rows(y, a, rows, k, n, b.rs, 0, k);
    } else if b.rs == 1 {
        let cols = &b.s[b.off..b.off + (n - 1) * b.cs + k];
        E::by_cols(y, a, cols, k, b.cs, 0);
    } else {
        return false;
    }
    true
}
