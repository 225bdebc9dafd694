//! Packing for the bf16 GEMM (`gemm::bf16`): panels of [`MR`] rows of `a` and of [`NR`]
//! columns of `b`, each lane a pair of bf16 along `k` (what one `vdpbf16ps` lane multiplies).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::super::simd::simd_kernel;
use super::Mat;

/// Rows of `a` per microkernel call.
pub(crate) const MR: usize = 6;
/// Columns of `b` per microkernel call (four AVX-512 vectors).
pub(crate) const NR: usize = 64;

/// Two bf16 as one lane of `vdpbf16ps`: `lo` is element `2p`, `hi` element `2p + 1`.
#[inline(always)]
pub(crate) fn pair(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

/// `s` read as pairs of bf16 (one `u32` each), when its start is 4-byte aligned.
fn as_pairs(s: &[u16]) -> Option<&[u32]> {
    bytemuck::try_cast_slice(&s[..s.len() & !1]).ok()
}

simd_kernel! {
    /// Packs rows `i0..i0 + rows` of `a (m, k)`, every pair along `k`, as panels of [`MR`] rows:
    /// row `i0 + ip·MR + i`, pair `p` goes to `out[(ip·kp + p)·MR + i]` (`kp` pairs). `out` comes
    /// zeroed, and stays zero past the rows and past `k`.
    pub(crate) fn pack_a(a: &Mat<u16>, i0: usize, rows: usize, k: usize, out: &mut [u32]) {
        let kp = k.div_ceil(2);
        let full = k / 2;
        if a.cs == 1 {
            // Row-major: each row's pairs are consecutive; a panel's MR rows are read as MR
            // streams and written pair by pair, sequentially.
            for (ip, panel) in out.chunks_mut(kp * MR).enumerate().take(rows.div_ceil(MR)) {
                let r = MR.min(rows - ip * MR);
                let mut streams: [&[u32]; MR] = [&[]; MR];
                let aligned = (0..r).all(|i| {
                    let row = &a.s[a.off + (i0 + ip * MR + i) * a.rs..][..k];
                    as_pairs(row).map(|p| streams[i] = &p[..full]).is_some()
                });
                if aligned {
                    for (p, dst) in panel.chunks_exact_mut(MR).take(full).enumerate() {
                        for (d, stream) in dst.iter_mut().zip(&streams[..r]) {
                            *d = stream[p];
                        }
                    }
                } else {
                    for i in 0..r {
                        let row = &a.s[a.off + (i0 + ip * MR + i) * a.rs..][..k];
                        for (p, two) in row.chunks_exact(2).enumerate() {
                            panel[p * MR + i] = pair(two[0], two[1]);
                        }
                    }
                }
                if k % 2 == 1 {
                    for i in 0..r {
                        let row = &a.s[a.off + (i0 + ip * MR + i) * a.rs..][..k];
                        panel[full * MR + i] = pair(row[k - 1], 0);
                    }
                }
            }
        } else if a.rs == 1 {
            // Column-major (a transposed matrix): rows 2p and 2p + 1 of aᵀ interleave, in one
            // vectorized pass per pair into `line`, then out to the panels.
            let mut line = vec![0u32; rows];
            for p in 0..kp {
                let r0 = &a.s[a.off + 2 * p * a.cs + i0..][..rows];
                if 2 * p + 1 < k {
                    let r1 = &a.s[a.off + (2 * p + 1) * a.cs + i0..][..rows];
                    for ((d, &lo), &hi) in line.iter_mut().zip(r0).zip(r1) {
                        *d = pair(lo, hi);
                    }
                } else {
                    for (d, &lo) in line.iter_mut().zip(r0) {
                        *d = pair(lo, 0);
                    }
                }
                for (ip, chunk) in line.chunks(MR).enumerate() {
                    out[(ip * kp + p) * MR..][..chunk.len()].copy_from_slice(chunk);
                }
            }
        } else {
            for i in 0..rows {
                let (ip, ii) = (i / MR, i % MR);
                for p in 0..kp {
                    let hi = if 2 * p + 1 < k { a.at(i0 + i, 2 * p + 1) } else { 0 };
                    out[(ip * kp + p) * MR + ii] = pair(a.at(i0 + i, 2 * p), hi);
                }
            }
        }
    }
}

simd_kernel! {
    /// Packs columns `j0..j0 + cols` (at most [`NR`]) of `b (k, n)`, every pair along `k`, into
    /// `out[p·NR + j]`; `out` comes zeroed, and stays zero past the columns and past `k`.
    pub(crate) fn pack_b(b: &Mat<u16>, j0: usize, cols: usize, k: usize, out: &mut [u32]) {
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
            // bᵀ row-major (a Linear weight): column j's pairs are consecutive. Transposed in
            // 16×16 tiles: 16 columns are read as 16 sequential streams, and each pair's 16
            // values are written as one run.
            const G: usize = 16;
            let full = k / 2;
            let mut tile = [[0u32; G]; G]; // tile[j][t]: column j, pair p0 + t
            for jg in (0..cols).step_by(G) {
                let gw = G.min(cols - jg);
                for p0 in (0..full).step_by(G) {
                    let np = G.min(full - p0);
                    for (jj, row) in tile.iter_mut().enumerate().take(gw) {
                        let col = &b.s[b.off + (j0 + jg + jj) * b.cs + 2 * p0..][..2 * np];
                        match as_pairs(col) {
                            Some(pairs) => row[..np].copy_from_slice(pairs),
                            None => {
                                for (d, two) in row.iter_mut().zip(col.chunks_exact(2)) {
                                    *d = pair(two[0], two[1]);
                                }
                            }
                        }
                    }
                    for t in 0..np {
                        let dst = &mut out[(p0 + t) * NR + jg..][..gw];
                        for (d, row) in dst.iter_mut().zip(&tile) {
                            *d = row[t];
                        }
                    }
                }
            }
            if k % 2 == 1 {
                for j in 0..cols {
                    out[full * NR + j] = pair(b.s[b.off + (j0 + j) * b.cs + k - 1], 0);
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
}
