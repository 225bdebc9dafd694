//! The small dense products of tiled attention, on `BK`-wide tiles: scores from rows and a
//! packed transposed tile ([`tile_dots`]), and weighted sums of rows ([`tile_weighted`]).
//! AVX-512 CPUs run explicit FMA kernels with the accumulators in registers; others run the
//! same loops written for LLVM to vectorize.

use super::super::simd::simd_kernel;
use super::super::storage::Rows4;

/// Keys (columns) per tile.
pub(crate) const BK: usize = 64;
/// Rows per microkernel step of the portable kernels.
const R: usize = 4;

/// `s[r·BK + c] = scale · Σ_j a[r][j] · bt[j·BK + c]` for every row `r` of `a` (rows of length
/// at least `n`) and the `BK` columns of `bt` (`n × BK`, row-major).
pub(crate) fn tile_dots(s: &mut [f32], a: &[&[f32]], bt: &[f32], n: usize, scale: f32) {
    let fits = bt.len() >= n * BK && s.len() >= a.len() * BK && a.iter().all(|r| r.len() >= n);
    #[cfg(target_arch = "x86_64")]
    if fits && super::super::isa::simd_level() == 2 {
        // SAFETY: AVX-512 was detected; `fits` bounds every access of the kernel.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
        unsafe { avx512::dots(s, a, bt, n, scale) };
        return;
    }
    let _ = fits;
    dots_generic(s, a, bt, n, scale);
}

/// `out[r][..] += Σ_j wts[r·ld + j] · vecs[j][..]` for the rows of `out` (length `w`) and the
/// `vecs.len()` weights of each row.
pub(crate) fn tile_weighted(out: &mut [f32], w: usize, wts: &[f32], ld: usize, vecs: &[&[f32]]) {
    let rows = out.len() / w.max(1);
    let fits = rows * w == out.len()
        && (rows == 0 || wts.len() >= (rows - 1) * ld + vecs.len())
        && vecs.iter().all(|v| v.len() >= w);
    #[cfg(target_arch = "x86_64")]
    if fits && super::super::isa::simd_level() == 2 {
        // SAFETY: AVX-512 was detected; `fits` bounds every access of the kernel.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
        unsafe { avx512::weighted(out, w, wts, ld, vecs) };
        return;
    }
    let _ = fits;
    weighted_generic(out, w, wts, ld, vecs);
}

simd_kernel! {
    /// `s[r·BK + c] = scale · Σ_j a[r][j] · bt[j·BK + c]` for every row `r` of `a` (rows of
    /// length `n`) and the `BK` columns of `bt` (`n × BK`, row-major).
    fn dots_generic(s: &mut [f32], a: &[&[f32]], bt: &[f32], n: usize, scale: f32) {
        let mut r = 0;
        while r + R <= a.len() {
            let mut acc = [[0f32; BK]; R];
            for j in 0..n {
                let b = &bt[j * BK..(j + 1) * BK];
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = a[r + i][j];
                    for c in 0..BK {
                        acc[c] += x * b[c];
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                for c in 0..BK {
                    s[(r + i) * BK + c] = acc[c] * scale;
                }
            }
            r += R;
        }
        for (i, row) in a.iter().enumerate().skip(r) {
            let mut acc = [0f32; BK];
            for j in 0..n {
                let b = &bt[j * BK..(j + 1) * BK];
                for c in 0..BK {
                    acc[c] += row[j] * b[c];
                }
            }
            for c in 0..BK {
                s[i * BK + c] = acc[c] * scale;
            }
        }
    }
}

/// `out[r][e0 + l] += Σ_j wts[r·ld + j] · vecs[j][e0 + l]` for `l < W` and rows `r0..r0 + RR`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weighted_block<const RR: usize, const W: usize>(
    out: &mut [f32],
    w: usize,
    r0: usize,
    e0: usize,
    wts: &[f32],
    ld: usize,
    vecs: &[&[f32]],
) {
    let mut acc = [[0f32; W]; RR];
    for (j, vec) in vecs.iter().enumerate() {
        let v = &vec[e0..e0 + W];
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = wts[(r0 + i) * ld + j];
            for l in 0..W {
                acc[l] += x * v[l];
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let o = &mut out[(r0 + i) * w + e0..(r0 + i) * w + e0 + W];
        for l in 0..W {
            o[l] += acc[l];
        }
    }
}

/// [`weighted_block`] over every column of `RR` rows: blocks of 32, 16, then single columns.
#[inline(always)]
fn weighted_rows<const RR: usize>(
    out: &mut [f32],
    w: usize,
    r0: usize,
    wts: &[f32],
    ld: usize,
    vecs: &[&[f32]],
) {
    let mut e = 0;
    while e + 32 <= w {
        weighted_block::<RR, 32>(out, w, r0, e, wts, ld, vecs);
        e += 32;
    }
    while e + 16 <= w {
        weighted_block::<RR, 16>(out, w, r0, e, wts, ld, vecs);
        e += 16;
    }
    while e < w {
        weighted_block::<RR, 1>(out, w, r0, e, wts, ld, vecs);
        e += 1;
    }
}

simd_kernel! {
    /// `out[r][..] += Σ_j wts[r·ld + j] · vecs[j][..]` for the rows of `out` (length `w`) and
    /// the `vecs.len()` weights of each row.
    fn weighted_generic(out: &mut [f32], w: usize, wts: &[f32], ld: usize, vecs: &[&[f32]]) {
        let rows = out.len() / w;
        let mut r = 0;
        while r + R <= rows {
            weighted_rows::<R>(out, w, r, wts, ld, vecs);
            r += R;
        }
        while r < rows {
            weighted_rows::<1>(out, w, r, wts, ld, vecs);
            r += 1;
        }
    }
}

/// `dst (cols × rows) = srcᵀ` for the first `rows` rows and `cols` columns of `src` (rows `BK`
/// apart).
pub(crate) fn transpose_tile(dst: &mut [f32], src: &[f32], rows: usize, cols: usize) {
    for c in 0..cols {
        for r in 0..rows {
            dst[c * rows + r] = src[r * BK + c];
        }
    }
}

/// Rows `j0..j0 + n` of head `(b, h)` of `x`, transposed into `out` (`x.dims[3] × BK`, zero
/// past `n`).
pub(crate) fn pack_transposed(out: &mut [f32], x: &Rows4, b: usize, h: usize, j0: usize, n: usize) {
    out.fill(0.0);
    for c in 0..n {
        for (j, &val) in x.row(b, h, j0 + c).iter().enumerate() {
            out[j * BK + c] = val;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The same products with AVX-512 FMAs: 16 accumulators of 16 lanes for the scores
    //! (4 rows × 64 columns), 8 for the weighted sums (4 rows × 32 columns).
    use std::arch::x86_64::*;

    use super::BK;

    /// [`super::tile_dots`]; callers checked the bounds and AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX512F; `bt` holds `n·BK` values, `s` holds `a.len()·BK`, and every row
    /// of `a` holds at least `n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots(s: &mut [f32], a: &[&[f32]], bt: &[f32], n: usize, scale: f32) {
        let mut r = 0;
        while r + 4 <= a.len() {
            // SAFETY: the caller's bounds: rows r..r+4 exist, each with n values.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
            unsafe { dots_rows::<4>(s, a, r, bt, n, scale) };
            r += 4;
        }
        while r < a.len() {
            // SAFETY: as above, for one row.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
            unsafe { dots_rows::<1>(s, a, r, bt, n, scale) };
            r += 1;
        }
    }

    /// The scores of rows `r..r + RR` of `a` into `s`.
    ///
    /// # Safety
    /// As [`dots`], and rows `r..r + RR` of `a` exist.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dots_rows<const RR: usize>(
        s: &mut [f32],
        a: &[&[f32]],
        r: usize,
        bt: &[f32],
        n: usize,
        scale: f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; RR];
        let b = bt.as_ptr();
        for j in 0..n {
            // SAFETY: bt holds n rows of BK values; row j of each a row exists (j < n).
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
            unsafe {
                let bj = b.add(j * BK);
                let cols = [
                    _mm512_loadu_ps(bj),
                    _mm512_loadu_ps(bj.add(16)),
                    _mm512_loadu_ps(bj.add(32)),
                    _mm512_loadu_ps(bj.add(48)),
                ];
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.get_unchecked(r + i).get_unchecked(j));
                    for c in 0..4 {
                        acc[c] = _mm512_fmadd_ps(x, cols[c], acc[c]);
                    }
                }
            }
        }
        let sc = _mm512_set1_ps(scale);
        for (i, acc) in acc.iter().enumerate() {
            for (c, v) in acc.iter().enumerate() {
                // SAFETY: s holds a row of BK scores for every row of a.
                // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
                unsafe {
                    _mm512_storeu_ps(
                        s.as_mut_ptr().add((r + i) * BK + 16 * c),
                        _mm512_mul_ps(*v, sc),
                    )
                };
            }
        }
    }

    /// [`super::tile_weighted`]; callers checked the bounds and AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX512F; `out` is whole rows of `w` values, `wts` holds the weights of
    /// each of them (`(rows - 1)·ld + vecs.len()` values) and every vector holds at least `w`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weighted(
        out: &mut [f32],
        w: usize,
        wts: &[f32],
        ld: usize,
        vecs: &[&[f32]],
    ) {
        let rows = out.len() / w;
        let mut r = 0;
        while r < rows {
            let step = if r + 4 <= rows { 4 } else { 1 };
            let mut e = 0;
            while e + 32 <= w {
                // SAFETY: the caller's bounds; columns e..e+32 are inside each row.
                // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
                unsafe {
                    if step == 4 {
                        weighted_block::<4, 2>(out, w, r, e, wts, ld, vecs);
                    } else {
                        weighted_block::<1, 2>(out, w, r, e, wts, ld, vecs);
                    }
                }
                e += 32;
            }
            while e + 16 <= w {
                // SAFETY: as above, for 16 columns.
                // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
                unsafe {
                    if step == 4 {
                        weighted_block::<4, 1>(out, w, r, e, wts, ld, vecs);
                    } else {
                        weighted_block::<1, 1>(out, w, r, e, wts, ld, vecs);
                    }
                }
                e += 16;
            }
            for i in r..r + step {
                for col in e..w {
                    let mut sum = 0.0;
                    for (j, v) in vecs.iter().enumerate() {
                        sum += wts[i * ld + j] * v[col];
                    }
                    out[i * w + col] += sum;
                }
            }
            r += step;
        }
    }

    /// Columns `e..e + 16·NV` of rows `r..r + RR` of `out`, accumulated.
    ///
    /// # Safety
    /// As [`weighted`], and rows `r..r + RR` exist with `e + 16·NV <= w`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn weighted_block<const RR: usize, const NV: usize>(
        out: &mut [f32],
        w: usize,
        r: usize,
        e: usize,
        wts: &[f32],
        ld: usize,
        vecs: &[&[f32]],
    ) {
        let o = out.as_mut_ptr();
        let mut acc = [[_mm512_setzero_ps(); NV]; RR];
        for (j, vec) in vecs.iter().enumerate() {
            // SAFETY: each vec has w >= e + 16·NV values; wts holds row r+i's weight j.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
            unsafe {
                let mut v = [_mm512_setzero_ps(); NV];
                for (k, v) in v.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(vec.as_ptr().add(e + 16 * k));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*wts.get_unchecked((r + i) * ld + j));
                    for k in 0..NV {
                        acc[k] = _mm512_fmadd_ps(x, v[k], acc[k]);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (k, a) in acc.iter().enumerate() {
                // SAFETY: row r+i of out has w >= e + 16·NV values.
                // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (attention).
                unsafe {
                    let p = o.add((r + i) * w + e + 16 * k);
                    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *a));
                }
            }
        }
    }
}
