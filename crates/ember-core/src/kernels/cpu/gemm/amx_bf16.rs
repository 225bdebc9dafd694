//! The bf16 GEMM on AMX tiles (`amx::bf16_block`), accumulated in f32 and rounded once.
//!
//! `b` is packed once per product into panels of [`PANEL`] columns whose rows are pairs along
//! `k` (the packing of the `vdpbf16ps` GEMM, `pack_bf16::pack_b`, which is also the tile layout
//! of `tdpbf16ps`'s second operand), padded with zero pairs to a whole number of tile steps.
//! Tasks of up to 128 rows by a range of panels copy their rows of `a` into a zero-padded
//! row-major block (in L2 for `k` up to 4096) and, panel by panel (a panel of `b` then serves
//! every 32-row block of the task from L2), run the micro-kernel on each 32-column half, `k`
//! whole, so each block of the result is loaded into tiles once and stored once.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::super::amx::{BLOCK, Backend, KSTEP, PANEL, bf16_block};
use super::super::bf16::narrow_into;
use super::super::par::Out;
use super::Mat;
use super::pack_bf16::{NR, pack_b};

/// 32-row blocks per task.
const ROW_BLOCKS: usize = 4;

const _: () = assert!(PANEL == NR, "amx::PANEL is the bf16 packing's panel width");

/// `out (m, n) = a (m, k) @ b (k, n)`, row-major `out`, on `backend`'s tiles.
pub(crate) fn gemm(
    backend: Backend,
    a: &Mat<u16>,
    b: &Mat<u16>,
    [m, k, n]: [usize; 3],
    out: &mut [MaybeUninit<u16>],
) {
    let kp = k.div_ceil(2).next_multiple_of(KSTEP); // pairs, padded
    let panels = n.div_ceil(PANEL);
    let mut bp = vec![0u32; panels * kp * PANEL]; // panel q, pair p: bp[(q·kp + p)·PANEL..]
    bp.par_chunks_mut(kp * PANEL)
        .enumerate()
        .for_each(|(q, d)| pack_b(b, q * PANEL, PANEL.min(n - q * PANEL), k, d));
    // Tasks of up to ROW_BLOCKS × 32 rows by a range of panels, enough for every thread to
    // stay busy; within a task each panel of `b` is read once and used by every row block.
    let groups = m.div_ceil(BLOCK * ROW_BLOCKS);
    let want = 4 * rayon::current_num_threads();
    let per_task = panels.div_ceil(want.div_ceil(groups).clamp(1, panels));
    let tasks: Vec<(usize, usize)> = (0..groups)
        .flat_map(|r| (0..panels).step_by(per_task).map(move |q| (r, q)))
        .collect();
    let dst = Out::new(out.as_mut_ptr());
    let lda = 2 * kp;
    tasks.into_par_iter().for_each(|(r, q0)| {
        let i0 = r * BLOCK * ROW_BLOCKS;
        let rows = (BLOCK * ROW_BLOCKS).min(m - i0);
        let blocks = rows.div_ceil(BLOCK);
        // (blocks·32, lda) bf16; rows past `rows` and values past `k` stay zero.
        let mut ap = vec![0u16; blocks * BLOCK * lda];
        for (i, row) in ap.chunks_exact_mut(lda).take(rows).enumerate() {
            if a.cs == 1 {
                row[..k].copy_from_slice(&a.s[a.off + (i0 + i) * a.rs..][..k]);
            } else {
                for (p, x) in row[..k].iter_mut().enumerate() {
                    *x = a.at(i0 + i, p);
                }
            }
        }
        let mut c = [0f32; BLOCK * BLOCK]; // (32, 32)
        for q in q0..panels.min(q0 + per_task) {
            for rb in 0..blocks {
                let a_block = &ap[rb * BLOCK * lda..(rb + 1) * BLOCK * lda];
                let block_rows = BLOCK.min(rows - rb * BLOCK);
                for half in 0..2 {
                    let j0 = q * PANEL + half * BLOCK;
                    if j0 >= n {
                        break;
                    }
                    let cols = BLOCK.min(n - j0);
                    let panel = &bp[q * kp * PANEL + half * BLOCK..(q + 1) * kp * PANEL];
                    bf16_block(backend, kp, a_block, lda, panel, &mut c, true);
                    for (i, sums) in c.chunks_exact(BLOCK).take(block_rows).enumerate() {
                        let row = i0 + rb * BLOCK + i;
                        // SAFETY: row `row`, columns `j0..j0 + cols` lie inside `out (m, n)`
                        // and belong to this task only.
                        // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
                        let row =
                            unsafe { std::slice::from_raw_parts_mut(dst.at(row * n + j0), cols) };
                        narrow_into(row, &sums[..cols]);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::amx::bf16_backend;
    use crate::kernels::cpu::bf16::{from_f32, to_f32};

    /// Values on a small grid, exact in bf16, so the products' sums are exact in f32 too.
    fn grid(len: usize, seed: usize) -> Vec<u16> {
        (0..len)
            .map(|i| from_f32(((i * 7 + seed * 13) % 17) as f32 / 4.0 - 2.0))
            .collect()
    }

    /// Every layout of `a` and `b` (row-major, column-major, neither) and every edge (rows
    /// past a block, columns past a half panel and a panel, odd `k`, `k` past a tile step)
    /// against a plain sum, on the emulator and, where the CPU has them, the real tiles.
    #[test]
    fn tiled_gemm_matches_a_plain_sum_for_every_layout() {
        let mut backends = vec![Backend::Emulated];
        match bf16_backend() {
            Some(Backend::Tiles) => backends.push(Backend::Tiles),
            _ => eprintln!("SKIPPED (real tiles): this CPU has no usable AMX-BF16; emulator only"),
        }
        for backend in backends {
            for [m, k, n] in [
                [13, 37, 45],
                [70, 66, 130],
                [33, 1, 3],
                [32, 64, 32],
                [161, 40, 70],
            ] {
                let (sa, sb) = (grid(2 * m * k, 1), grid(2 * k * n, 2));
                let layouts = |rows: usize, cols: usize| {
                    [(0, cols, 1), (0, 1, rows), (1, 2 * cols, 2)] // (offset, rs, cs)
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
                        let mut out = vec![MaybeUninit::new(0u16); m * n];
                        gemm(backend, &a, &b, [m, k, n], &mut out);
                        for i in 0..m {
                            for j in 0..n {
                                let want = (0..k)
                                    .fold(0f32, |s, p| s + to_f32(a.at(i, p)) * to_f32(b.at(p, j)));
                                // SAFETY: initialized above (and written by the GEMM).
                                // Exercised under AddressSanitizer (scripts/memcheck.sh) by this test.
                                let got = unsafe { out[i * n + j].assume_init() };
                                assert_eq!(
                                    got,
                                    from_f32(want),
                                    "{backend:?} [{m}, {k}, {n}] a ({ars}, {acs}) b ({brs}, {bcs}) at ({i}, {j})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
