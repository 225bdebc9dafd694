//! Work splitting over rayon's pool, shared by the kernels: blocks of elements or rows per
//! task, the output buffer that tasks write disjoint parts of, and how few-row products
//! split their streamed operand.

use rayon::prelude::*;

/// Elements per parallel task of the elementwise kernels.
pub(crate) const CHUNK: usize = 1 << 14;

/// A buffer shared by parallel tasks that write disjoint elements of it (their own rows,
/// tiles or column groups).
#[derive(Clone, Copy)]
pub(crate) struct Out<T>(*mut T);

// SAFETY: an `Out` is only a pointer; whoever writes through it writes elements no other
// task touches (each use says which), so sharing it between threads is sound.
// Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs and the bf16 GEMM's.
unsafe impl<T> Send for Out<T> {}
// SAFETY: as above.
// Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs and the bf16 GEMM's.
unsafe impl<T> Sync for Out<T> {}

impl<T> Out<T> {
    /// The buffer starting at `start`.
    pub(crate) fn new(start: *mut T) -> Out<T> {
        Out(start)
    }

    /// The element at `i` (a method, so closures capture the whole `Out`, not the pointer).
    pub(crate) fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

/// `f(out_block, x_block)` over blocks of `step` elements, in parallel; a single block runs on
/// the calling thread (no hand-off to the pool).
pub(crate) fn par_blocks1(
    out: &mut [f32],
    x: &[f32],
    step: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    if out.len() <= step {
        f(out, x);
    } else {
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .for_each(|(o, x)| f(o, x));
    }
}

/// `f(out_block, x_block, g_block)` over blocks of `step` elements, as [`par_blocks1`].
pub(crate) fn par_blocks2(
    out: &mut [f32],
    x: &[f32],
    g: &[f32],
    step: usize,
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) {
    if out.len() <= step {
        f(out, x, g);
    } else {
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step).zip(g.par_chunks(step)))
            .for_each(|(o, (x, g))| f(o, x, g));
    }
}

/// Rows of length `d` per parallel task: about `CHUNK` elements, at least one row.
pub(crate) fn rows_per_task(d: usize) -> usize {
    (CHUNK / d.max(1)).max(1)
}

/// A few-row product `a (m, k) @ b (k, n)` streaming `b` by rows: rows of `b` per task, so
/// each thread reads about two contiguous ranges (at least 16 rows each).
pub(crate) fn stream_rows_per_task(k: usize) -> usize {
    k.div_ceil(rayon::current_num_threads() * 2).max(16)
}

/// A few-row product streaming `b` by columns (`b` a transposed matrix): result columns per
/// task, four tasks per thread, in multiples of 16 and at least 64.
pub(crate) fn stream_cols_per_task(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads() * 4)
        .next_multiple_of(16)
        .max(64)
        .min(n)
}

/// The `(m, n)` row-major result assembled from column blocks: `(j0, part)` where `part` is
/// the `(m, width)` block of columns `j0..j0 + width`.
pub(crate) fn scatter_columns(parts: &[(usize, Vec<f32>)], m: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for (j0, part) in parts {
        let bw = part.len() / m;
        for i in 0..m {
            out[i * n + j0..i * n + j0 + bw].copy_from_slice(&part[i * bw..(i + 1) * bw]);
        }
    }
    out
}
