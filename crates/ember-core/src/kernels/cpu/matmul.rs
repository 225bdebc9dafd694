//! Matrix products of f32 CPU tensors: the `gemm` crate called directly into a fresh buffer,
//! and few-row products (decoding) that stream the weight once without packing it.

use rayon::prelude::*;

use super::simd::{dot_by, simd_kernel};
use super::storage::{checked_strides, flex, from_vec, values};
use crate::kernels::prim::Prim;

/// Row counts up to which products skip the GEMM in [`matmul`] (decode steps, small batches).
pub(crate) const FEW_ROWS: usize = 4;

/// How `b` of a product `a @ b`, `(k, n)`, lies in its storage.
enum Rhs<'a> {
    /// Row-major: row `p` is `s[p·n .. p·n + n]`.
    Rows(&'a [f32]),
    /// The transpose of a row-major `(n, k)`: column `j` is `s[j·k .. j·k + k]`.
    Cols(&'a [f32]),
}

/// The storage view of a 2-D f32 CPU primitive `b` of shape `(k, n)`, when it is row-major or
/// a transposed row-major matrix.
fn rhs_view(b: &Prim) -> Option<Rhs<'_>> {
    let t = flex(b)?;
    let dims = b.dims();
    let [k, n] = dims[..] else { return None };
    let layout = t.layout();
    let (off, strides) = (layout.start_offset(), layout.strides());
    let s = t
        .storage::<f32>()
        .get(off..off.checked_add(k.checked_mul(n)?)?)?;
    if strides == [n as isize, 1] || n == 1 && strides[1] == 1 && strides[0] == 1 {
        Some(Rhs::Rows(s))
    } else if strides == [1, k as isize] {
        Some(Rhs::Cols(s))
    } else {
        None
    }
}

simd_kernel! {
    /// `y[i, :] += Σ_{p < rows} a[i, p0 + p] · b[p·ld .. p·ld + n]`: rows `p0..p0+rows` of a
    /// `b (k, n)` whose rows lie `ld` apart; `y` is `(m, n)`.
    fn few_rows_by_rows(
        y: &mut [f32],
        a: &[f32],
        b: &[f32],
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
                    *o += ap * bv;
                }
            }
        }
    }
}

simd_kernel! {
    /// `y[i, j] = a[i, :] · bt[(j0 + j)·ld ..][..k]` for `b = btᵀ` whose columns lie `ld` apart;
    /// `y` is `(m, w)` for the column block starting at `j0`.
    fn few_rows_by_cols(y: &mut [f32], a: &[f32], bt: &[f32], k: usize, ld: usize, j0: usize) {
        let w = y.len() / (a.len() / k);
        for (yi, ai) in y.chunks_exact_mut(w).zip(a.chunks_exact(k)) {
            for (j, o) in yi.iter_mut().enumerate() {
                let col = &bt[(j0 + j) * ld..(j0 + j) * ld + k];
                *o = dot_by(ai, col, |x, y| x * y);
            }
        }
    }
}

/// `a @ b` for a contiguous `a (m, k)` with `m <= FEW_ROWS` and `b (k, n)` row-major or
/// transposed: streams `b` once, split by columns over the threads. The GEMM packs `b` for so
/// few rows and runs matrix-vector products on one thread.
fn matmul_few_rows(a: &Prim, b: &Prim) -> Option<Prim> {
    let (ad, bd) = (a.dims(), b.dims());
    let ([m, k], [k2, n]) = (ad[..].try_into().ok()?, bd[..].try_into().ok()?);
    if m == 0 || m > FEW_ROWS || k != k2 || k == 0 || n == 0 {
        return None;
    }
    let av = values(a)?;
    let out = match rhs_view(b)? {
        // Contiguous row ranges of b per task (sequential streaming), partial sums added.
        Rhs::Rows(s) => {
            let tasks = rayon::current_num_threads() * 2;
            let rows = k.div_ceil(tasks).max(16);
            s.par_chunks(rows * n)
                .enumerate()
                .map(|(t, block)| {
                    let mut y = vec![0f32; m * n];
                    few_rows_by_rows(&mut y, av, block, k, n, n, t * rows, block.len() / n);
                    y
                })
                .reduce_with(|mut acc, part| {
                    acc.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                    acc
                })?
        }
        // Column blocks of the result per task: each reads its own rows of bᵀ.
        Rhs::Cols(s) => {
            let tasks = rayon::current_num_threads() * 4;
            let w = n.div_ceil(tasks).next_multiple_of(16).max(64).min(n);
            let blocks: Vec<usize> = (0..n).step_by(w).collect();
            let parts: Vec<Vec<f32>> = blocks
                .par_iter()
                .map(|&j0| {
                    let mut y = vec![0f32; m * w.min(n - j0)];
                    few_rows_by_cols(&mut y, av, s, k, k, j0);
                    y
                })
                .collect();
            let mut out = vec![0f32; m * n];
            for (&j0, part) in blocks.iter().zip(&parts) {
                let bw = part.len() / m;
                for i in 0..m {
                    out[i * n + j0..i * n + j0 + bw].copy_from_slice(&part[i * bw..(i + 1) * bw]);
                }
            }
            out
        }
    };
    Some(from_vec(out, vec![m, n]))
}

// ---------------------------------------------------------------- GEMM

/// Products of at least this many multiply-adds split one matrix over the threads (smaller
/// ones run one matrix per thread across the batch).
const GEMM_PARALLEL_MACS: usize = 192 * 192 * 192;

/// Batched `a (.., m, k) @ b (.., k, n)` with equal batch dims, for f32 CPU primitives of any
/// non-negative strides: the few-row kernel for at most [`FEW_ROWS`] rows, else the `gemm`
/// crate directly into a fresh buffer (burn-flex's matmul zero-fills and then re-copies its
/// output buffer for alignment).
pub(crate) fn matmul(a: &Prim, b: &Prim) -> Option<Prim> {
    if let Some(y) = matmul_few_rows(a, b) {
        return Some(y);
    }
    let (ta, tb) = (flex(a)?, flex(b)?);
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    if r < 2 || bd.len() != r || ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 2] {
        return None;
    }
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    let (sa, sb) = (checked_strides(ta)?, checked_strides(tb)?);
    let batch_dims = &ad[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let mut out_dims = ad[..r - 1].to_vec();
    out_dims.push(n);
    let size = m * n;
    let mut out: Vec<f32> = Vec::with_capacity(batch * size);
    // Element offsets of matrix `i` of the batch in a and b.
    let offset = |i: usize, strides: &[isize], start: usize| -> isize {
        let (mut rem, mut off) = (i, start as isize);
        for d in (0..batch_dims.len()).rev() {
            off += (rem % batch_dims[d]) as isize * strides[d];
            rem /= batch_dims[d];
        }
        off
    };
    let (sta, stb) = (ta.storage::<f32>(), tb.storage::<f32>());
    let (a0, b0) = (ta.layout().start_offset(), tb.layout().start_offset());
    let run = |i: usize, dst: *mut f32, par: gemm::Parallelism| {
        // SAFETY: `checked_strides` bounded every element of a and b reachable through these
        // offsets and strides; `dst` has room for the `(m, n)` result written row-major; with
        // `read_dst` false gemm only writes it.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                1,
                n as isize,
                false,
                sta.as_ptr().offset(offset(i, &sa, a0)),
                sa[r - 1],
                sa[r - 2],
                stb.as_ptr().offset(offset(i, &sb, b0)),
                sb[r - 1],
                sb[r - 2],
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    };
    if m <= FEW_ROWS && (sb[r - 1] == 1 || sb[r - 2] == 1) {
        // Decode-sized products in a batch (attention over a KV cache): one matrix per task,
        // b streamed by rows or by columns without packing.
        let mut out = vec![0f32; batch * size];
        let one = |(i, y): (usize, &mut [f32])| {
            let (oa, ob) = (offset(i, &sa, a0) as usize, offset(i, &sb, b0) as usize);
            let (ra, ca) = (sa[r - 2] as usize, sa[r - 1] as usize);
            let a_rows: Vec<f32> = (0..m * k)
                .map(|e| sta[oa + (e / k) * ra + (e % k) * ca])
                .collect();
            if sb[r - 1] == 1 {
                let ld = sb[r - 2] as usize;
                let b_rows = &stb[ob..ob + (k - 1) * ld + n];
                few_rows_by_rows(y, &a_rows, b_rows, k, n, ld, 0, k);
            } else {
                let ld = sb[r - 1] as usize;
                let b_cols = &stb[ob..ob + (n - 1) * ld + k];
                few_rows_by_cols(y, &a_rows, b_cols, k, ld, 0);
            }
        };
        if batch * size * k <= 1 << 20 {
            out.chunks_mut(size).enumerate().for_each(one); // small: no hand-off to the pool
        } else {
            out.par_chunks_mut(size).enumerate().for_each(one);
        }
        return Some(from_vec(out, out_dims));
    }
    let spare = &mut out.spare_capacity_mut()[..batch * size];
    if m * n * k >= GEMM_PARALLEL_MACS || batch == 1 {
        let par = if m * n * k >= GEMM_PARALLEL_MACS {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        } else {
            gemm::Parallelism::None
        };
        for (i, dst) in spare.chunks_mut(size).enumerate() {
            run(i, dst.as_mut_ptr().cast(), par);
        }
    } else {
        spare
            .par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, dst)| run(i, dst.as_mut_ptr().cast(), gemm::Parallelism::None));
    }
    // SAFETY: every matrix of the batch was written in full above (k >= 1: `checked_strides`
    // refuses empty dims).
    unsafe { out.set_len(batch * size) };
    Some(from_vec(out, out_dims))
}

/// `acc += a @ b` for 2-D f32 CPU primitives (`a (m, k)`, `b (k, n)` in any strides), written
/// into `acc`'s `(m, n)` buffer when nothing else holds it and it is contiguous; otherwise
/// `acc` comes back in `Err`.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn matmul_add_into(acc: Prim, a: &Prim, b: &Prim) -> Result<Prim, Prim> {
    let (ad, bd) = (a.dims(), b.dims());
    let ([m, k], [k2, n]) = match (ad[..].try_into(), bd[..].try_into()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(acc),
    };
    let (Some(ta), Some(tb)) = (flex(a), flex(b)) else {
        return Err(acc);
    };
    let (Some(sa), Some(sb)) = (checked_strides(ta), checked_strides(tb)) else {
        return Err(acc);
    };
    if k != k2 || acc.dims() != [m, n] || values(&acc).is_none() {
        return Err(acc);
    }
    let mut t = super::storage::take_flex(acc)?;
    let Some(dst) = super::storage::unique_values(&mut t) else {
        return Err(super::storage::wrap(t));
    };
    let (sta, stb) = (ta.storage::<f32>(), tb.storage::<f32>());
    let (a0, b0) = (ta.layout().start_offset(), tb.layout().start_offset());
    let par = if m * n * k >= GEMM_PARALLEL_MACS {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `checked_strides` bounded every element of a and b reachable from their start
    // offsets and strides; `dst` holds the contiguous `(m, n)` matrix gemm reads and adds to
    // (`read_dst`, alpha 1).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            true,
            sta.as_ptr().add(a0),
            sa[1],
            sa[0],
            stb.as_ptr().add(b0),
            sb[1],
            sb[0],
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    };
    Ok(super::storage::wrap(t))
}
