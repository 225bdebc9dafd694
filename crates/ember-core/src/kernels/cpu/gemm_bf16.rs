//! bf16 matrix products on the CPU, accumulated in f32 and rounded once to bf16.
//!
//! With AVX512_BF16 (`vdpbf16ps`: 16 lanes, each adding the products of a pair of bf16 to an
//! f32) the product runs as a packed GEMM: `b` is packed once into panels of [`NR`] columns
//! whose elements are pairs along `k`, each task packs its rows of `a` into panels of [`MR`]
//! rows by [`KC`] pairs, and a 12×32 register-tiled microkernel multiplies one panel of each.
//! Few-row products (decoding) stream `b` once, widening it to f32 as they go. Without
//! AVX512_BF16 the caller widens both operands and runs the f32 GEMM.

use rayon::prelude::*;

use super::bf16::{bits, flex_bf16, from_bits, narrow_into, to_f32};
use super::matmul::FEW_ROWS;
use super::simd::simd_kernel;
use super::storage::strides_within;
use crate::kernels::prim::Prim;

/// Rows of `a` per microkernel call.
const MR: usize = 6;
/// Columns of `b` per microkernel call (four AVX-512 vectors).
const NR: usize = 64;
/// Pairs along `k` per block (128 values: a 16 KiB panel of `b` stays in L1).
const KC: usize = 64;
/// Rows of the result per task (16 panels of `a`).
const MC: usize = 96;
/// Columns per pass over a task's packed rows (the f32 partial sums stay in L2).
const NC_MAX: usize = 512;
/// AVX-512 vectors per row of the microkernel's tile.
const V: usize = NR / 16;

/// A bf16 matrix read in place: element `(i, p)` at `s[off + i·rs + p·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    s: &'a [u16],
    off: usize,
    rs: usize,
    cs: usize,
}

impl Mat<'_> {
    #[inline(always)]
    fn at(&self, i: usize, p: usize) -> u16 {
        self.s[self.off + i * self.rs + p * self.cs]
    }
}

/// Two bf16 as one lane of `vdpbf16ps`: `lo` is element `2p`, `hi` element `2p + 1`.
#[inline(always)]
fn pair(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

/// Packs rows `i0..i0 + rows` (at most [`MR`]) of `a (m, k)`, every pair along `k`, into
/// `out[p·MR + i]`; `out` comes zeroed, and stays zero past the rows and past `k`.
fn pack_a(a: &Mat, i0: usize, rows: usize, k: usize, out: &mut [u32]) {
    let (full, odd) = (k / 2, k % 2 == 1);
    if a.cs == 1 {
        let row = |i: usize| &a.s[a.off + (i0 + i) * a.rs..][..k];
        let mut rs: [&[u16]; MR] = [&[]; MR];
        for (i, r) in rs.iter_mut().enumerate().take(rows) {
            *r = row(i);
        }
        for (p, dst) in out.chunks_exact_mut(MR).take(full).enumerate() {
            for (d, r) in dst.iter_mut().zip(&rs[..rows]) {
                *d = pair(r[2 * p], r[2 * p + 1]);
            }
        }
        if odd {
            for (i, r) in rs[..rows].iter().enumerate() {
                out[full * MR + i] = pair(r[k - 1], 0);
            }
        }
    } else if a.rs == 1 {
        for p in 0..k.div_ceil(2) {
            let r0 = &a.s[a.off + 2 * p * a.cs + i0..][..rows];
            let dst = &mut out[p * MR..p * MR + rows];
            if 2 * p + 1 < k {
                let r1 = &a.s[a.off + (2 * p + 1) * a.cs + i0..][..rows];
                for ((d, &lo), &hi) in dst.iter_mut().zip(r0).zip(r1) {
                    *d = pair(lo, hi);
                }
            } else {
                for (d, &lo) in dst.iter_mut().zip(r0) {
                    *d = pair(lo, 0);
                }
            }
        }
    } else {
        for p in 0..k.div_ceil(2) {
            for i in 0..rows {
                let hi = if 2 * p + 1 < k {
                    a.at(i0 + i, 2 * p + 1)
                } else {
                    0
                };
                out[p * MR + i] = pair(a.at(i0 + i, 2 * p), hi);
            }
        }
    }
}

/// Packs columns `j0..j0 + cols` (at most [`NR`]) of `b (k, n)`, every pair along `k`, into
/// `out[p·NR + j]`; `out` comes zeroed, and stays zero past the columns and past `k`.
fn pack_b(b: &Mat, j0: usize, cols: usize, k: usize, out: &mut [u32]) {
    let kp = k.div_ceil(2);
    if b.cs == 1 {
        for p in 0..kp {
            let r0 = &b.s[b.off + 2 * p * b.rs + j0..][..cols];
            let dst = &mut out[p * NR..p * NR + cols];
            if 2 * p + 1 < k {
                let r1 = &b.s[b.off + (2 * p + 1) * b.rs + j0..][..cols];
                for ((d, &lo), &hi) in dst.iter_mut().zip(r0).zip(r1) {
                    *d = pair(lo, hi);
                }
            } else {
                for (d, &lo) in dst.iter_mut().zip(r0) {
                    *d = pair(lo, 0);
                }
            }
        }
    } else if b.rs == 1 {
        for j in 0..cols {
            let col = &b.s[b.off + (j0 + j) * b.cs..][..k];
            for (p, two) in col.chunks(2).enumerate() {
                out[p * NR + j] = pair(two[0], two.get(1).copied().unwrap_or(0));
            }
        }
    } else {
        for p in 0..kp {
            for j in 0..cols {
                let hi = if 2 * p + 1 < k {
                    b.at(2 * p + 1, j0 + j)
                } else {
                    0
                };
                out[p * NR + j] = pair(b.at(2 * p, j0 + j), hi);
            }
        }
    }
}

/// `c[i·ldc + j] (+)= Σ_p a[p·MR + i] · b[p·NR + j]` over `kp` pairs for the `MR`×`NR` tile:
/// loaded from `c` unless `first`, then stored back.
///
/// # Safety
/// The CPU has AVX512F and AVX512_BF16; `a` holds `kp·MR` pairs, `b` holds `kp·NR` pairs and
/// `c` holds `MR` rows of `NR` f32 spaced `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
unsafe fn micro(kp: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, first: bool) {
    use std::arch::x86_64::*;
    use std::mem::transmute;
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    // SAFETY (whole body): the caller's contract bounds every pointer offset below.
    unsafe {
        if !first {
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(c.add(i * ldc + 16 * v));
                }
            }
        }
        for p in 0..kp {
            let mut bv = [transmute::<__m512, __m512bh>(_mm512_setzero_ps()); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b.add(p * NR + 16 * v).cast(),
                ));
            }
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*ap.add(i) as i32));
                for (x, &bx) in row.iter_mut().zip(&bv) {
                    *x = _mm512_dpbf16_ps(*x, av, bx);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(i * ldc + 16 * v), *x);
            }
        }
    }
}

/// The result buffer shared by the tasks, each writing its own tile.
struct Out(*mut u16);
// SAFETY: tasks write disjoint tiles of the buffer (see `gemm`).
unsafe impl Sync for Out {}

impl Out {
    /// The buffer's start (a method, so closures capture the `Sync` wrapper, not the pointer).
    fn ptr(&self) -> *mut u16 {
        self.0
    }
}

/// `out (m, n) = a (m, k) @ b (k, n)`, row-major `out`, by the packed AVX512_BF16 GEMM.
#[cfg(target_arch = "x86_64")]
fn gemm(a: &Mat, b: &Mat, [m, k, n]: [usize; 3], out: &mut [u16]) {
    let kp_all = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    let mut bp = vec![0u32; panels * kp_all * NR];
    bp.par_chunks_mut(kp_all * NR)
        .enumerate()
        .for_each(|(q, dst)| pack_b(b, q * NR, NR.min(n - q * NR), k, dst));
    // Tasks of MC rows by `width` columns, enough for every thread to stay busy; each packs
    // its rows of `a` once, for every k.
    let row_tiles = m.div_ceil(MC);
    let want = 4 * rayon::current_num_threads();
    let col_tiles = want.div_ceil(row_tiles).clamp(1, panels);
    let width = panels.div_ceil(col_tiles) * NR;
    let tiles: Vec<(usize, usize)> = (0..m)
        .step_by(MC)
        .flat_map(|i0| (0..n).step_by(width).map(move |j0| (i0, j0)))
        .collect();
    let dst = Out(out.as_mut_ptr());
    tiles.par_iter().for_each(|&(i0, j_start)| {
        let rows = MC.min(m - i0);
        let mpan = rows.div_ceil(MR);
        let mut ap = vec![0u32; mpan * MR * kp_all]; // panel ip, pair p: ap[(ip·kp_all + p)·MR..]
        for ip in 0..mpan {
            let r = MR.min(rows - ip * MR);
            let panel = &mut ap[ip * MR * kp_all..][..MR * kp_all];
            pack_a(a, i0 + ip * MR, r, k, panel);
        }
        let j_end = (j_start + width).min(n);
        let mut cbuf = vec![0f32; mpan * MR * NC_MAX]; // (mpan·MR, ≤ NC_MAX)
        for j0 in (j_start..j_end).step_by(NC_MAX) {
            let cols = NC_MAX.min(j_end - j0);
            let npan = cols.div_ceil(NR);
            let ldc = npan * NR;
            for p0 in (0..kp_all).step_by(KC) {
                let kp = KC.min(kp_all - p0);
                for jp in 0..npan {
                    let q = j0 / NR + jp;
                    let bpan = &bp[(q * kp_all + p0) * NR..][..kp * NR];
                    for ip in 0..mpan {
                        let apan = &ap[(ip * kp_all + p0) * MR..][..kp * MR];
                        let c = &mut cbuf[ip * MR * ldc + jp * NR..];
                        debug_assert!(c.len() >= (MR - 1) * ldc + NR);
                        // SAFETY: `gemm` runs only where `has_bf16_dot` holds; the panels
                        // hold `kp·MR` and `kp·NR` pairs, `c` the tile at stride `ldc`.
                        unsafe {
                            micro(
                                kp,
                                apan.as_ptr(),
                                bpan.as_ptr(),
                                c.as_mut_ptr(),
                                ldc,
                                p0 == 0,
                            )
                        };
                    }
                }
            }
            for r in 0..rows {
                // SAFETY: row `i0 + r`, columns `j0..j0 + cols` lie inside `out (m, n)` and
                // belong to this task only.
                let row = unsafe {
                    std::slice::from_raw_parts_mut(dst.ptr().add((i0 + r) * n + j0), cols)
                };
                narrow_into(row, &cbuf[r * ldc..][..cols]);
            }
        }
    });
}

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

/// `a (m, k) @ b (k, n)` for at most [`FEW_ROWS`] rows: `b` streamed once over the threads
/// (rows of `b` by ranges, or columns of `b` by blocks), `a` widened to f32.
fn few_rows(a: &Mat, b: &Mat, [m, k, n]: [usize; 3]) -> Vec<f32> {
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

/// Batched `a (.., m, k) @ b (.., k, n)` of bf16 CPU primitives with equal batch dims and
/// non-negative strides, into a fresh bf16 result: the few-row kernel for at most
/// [`FEW_ROWS`] rows when `b` has a unit stride, else the AVX512_BF16 GEMM. `None` when the
/// operands do not qualify or the CPU lacks AVX512_BF16.
pub(crate) fn matmul(a: &Prim, b: &Prim) -> Option<Prim> {
    let (ta, tb) = (flex_bf16(a)?, flex_bf16(b)?);
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    if r < 2 || bd.len() != r || ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 2] {
        return None;
    }
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    let (sa_all, sb_all) = (bits(ta), bits(tb));
    let sa = strides_within(ta, sa_all.len())?;
    let sb = strides_within(tb, sb_all.len())?;
    let few = m <= FEW_ROWS && (sb[r - 1] == 1 || sb[r - 2] == 1);
    if !few && !super::bf16::has_bf16_dot() {
        return None;
    }
    let batch_dims = &ad[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let offset = |i: usize, strides: &[isize], start: usize| -> usize {
        let (mut rem, mut off) = (i, start);
        for d in (0..batch_dims.len()).rev() {
            off += (rem % batch_dims[d]) * strides[d] as usize;
            rem /= batch_dims[d];
        }
        off
    };
    let mut out = vec![0u16; batch * m * n];
    let (a0, b0) = (ta.layout().start_offset(), tb.layout().start_offset());
    for (i, dst) in out.chunks_mut(m * n).enumerate() {
        let ma = Mat {
            s: sa_all,
            off: offset(i, &sa, a0),
            rs: sa[r - 2] as usize,
            cs: sa[r - 1] as usize,
        };
        let mb = Mat {
            s: sb_all,
            off: offset(i, &sb, b0),
            rs: sb[r - 2] as usize,
            cs: sb[r - 1] as usize,
        };
        if few {
            narrow_into(dst, &few_rows(&ma, &mb, [m, k, n]));
        } else {
            #[cfg(target_arch = "x86_64")]
            gemm(&ma, &mb, [m, k, n], dst);
        }
    }
    let mut out_dims = ad[..r - 1].to_vec();
    out_dims.push(n);
    Some(from_bits(out, out_dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::bf16::from_f32;

    /// Values on a small grid, exact in bf16, so the products' sums are exact in f32 too.
    fn grid(len: usize, seed: usize) -> Vec<u16> {
        (0..len)
            .map(|i| from_f32(((i * 7 + seed * 13) % 17) as f32 / 4.0 - 2.0))
            .collect()
    }

    /// Every packing path (unit row stride, unit column stride, neither) and every edge
    /// (rows past a panel, columns past a panel, odd k, several k blocks) against a plain sum.
    #[test]
    fn packed_gemm_matches_a_plain_sum_for_every_layout() {
        if !crate::kernels::cpu::bf16::has_bf16_dot() {
            eprintln!("SKIPPED: this CPU has no AVX512_BF16; the packed GEMM cannot run here");
            return;
        }
        for [m, k, n] in [[13, 37, 45], [97, 301, 70], [12, 258, 32], [5, 1, 3]] {
            // Storage twice as large as needed, addressed with a spacing of 2 ("general").
            let (sa, sb) = (grid(2 * m * k, 1), grid(2 * k * n, 2));
            let layouts = |rows: usize, cols: usize| {
                [
                    (0, cols, 1),     // row-major
                    (0, 1, rows),     // column-major
                    (1, 2 * cols, 2), // neither stride is 1
                ]
            };
            for (ao, ars, acs) in layouts(m, k) {
                for (bo, brs, bcs) in layouts(k, n) {
                    let a = Mat {
                        s: &sa,
                        off: ao,
                        rs: ars,
                        cs: acs,
                    };
                    let b = Mat {
                        s: &sb,
                        off: bo,
                        rs: brs,
                        cs: bcs,
                    };
                    let mut out = vec![0u16; m * n];
                    gemm(&a, &b, [m, k, n], &mut out);
                    for i in 0..m {
                        for j in 0..n {
                            let want = (0..k)
                                .fold(0f32, |s, p| s + to_f32(a.at(i, p)) * to_f32(b.at(p, j)));
                            assert_eq!(
                                out[i * n + j],
                                from_f32(want),
                                "[{m}, {k}, {n}] a ({ars}, {acs}) b ({brs}, {bcs}) at ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}
