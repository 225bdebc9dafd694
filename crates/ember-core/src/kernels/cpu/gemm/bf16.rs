//! The bf16 GEMM on the CPU, accumulated in f32 and rounded once to bf16.
//!
//! With AVX512_BF16 (`vdpbf16ps`: 16 lanes, each adding the products of a pair of bf16 to an
//! f32) the product runs as a packed GEMM: `b` is packed once into panels of [`NR`] columns
//! whose elements are pairs along `k` (`pack_bf16`), each task packs its rows of `a` into
//! panels of [`MR`] rows by [`KC`] pairs, and a 6×64 register-tiled microkernel multiplies
//! one panel of each. Few-row products (decoding) and CPUs without AVX512_BF16 are the
//! caller's (`cpu::matmul`: `stream`, or the f32 GEMM on widened operands).
// Off x86_64 (the wasm32 build) only the entry points remain: the packed path is x86's.
#![cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables)
)]

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::super::amx;
use super::super::bf16::narrow_into;
use super::super::isa::bf16_dot_pays;
use super::super::par::Out;
use super::Mat;
use super::amx_bf16;
use super::pack_bf16::{MR, NR, pack_a, pack_b};

/// Pairs along `k` per block (128 values: a 16 KiB panel of `b` stays in L1).
const KC: usize = 64;
/// Rows of the result per task (16 panels of `a`).
const MC: usize = 96;
/// Columns per pass over a task's packed rows (the f32 partial sums stay in L2).
const NC_MAX: usize = 512;
/// Columns of `b` per packed block.
const NB: usize = 2048;
/// Pairs along `k` per packed block of `b` (at most 16 MiB packed with [`NB`]).
const KB: usize = 2048;
/// AVX-512 vectors per row of the microkernel's tile.
const V: usize = NR / 16;

/// `c[i·ldc + j] (+)= Σ_p a(i, p) · b[p·NR + j]` over `kp` pairs for the `MR`×`NR` tile:
/// loaded from `c` unless `first`, then stored back. `a(i, p)` is the pair at `a[p·MR + i]` of
/// a packed panel, or with `DIRECT` at bf16 offset `i·lda + 2p` of a row-major `a` read in
/// place.
///
/// # Safety
/// The CPU has AVX512F and AVX512_BF16; `a` holds `kp` pairs of `MR` rows as described, `b`
/// holds `kp·NR` pairs and `c` holds `MR` rows of `NR` f32 spaced `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<const DIRECT: bool>(
    kp: usize,
    a: *const u16,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    use std::arch::x86_64::*;
    use std::mem::transmute;
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    // SAFETY: the caller's contract (above) bounds every pointer offset of the whole body.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
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
            for (i, row) in acc.iter_mut().enumerate() {
                let at = if DIRECT {
                    i * lda + 2 * p
                } else {
                    2 * (p * MR + i)
                };
                let pair = a.add(at).cast::<u32>().read_unaligned();
                let av = transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32));
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

thread_local! {
    /// Packed panels of `b` (on the calling thread) and of `a` (on each task's thread), reused
    /// from product to product. They are never zeroed: the packers write every pair the
    /// microkernel reads for the result's rows and columns (and zero high halves past an odd
    /// `k`); what lies past the last row or column only reaches results that are dropped.
    static PACKED_B: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    static PACKED_A: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer in `slot`, taken out for the call: a product started
/// while this one waits for its tasks (rayon runs other work meanwhile, perhaps another
/// product) finds the slot empty and uses a fresh buffer instead of sharing this one.
fn with_scratch<R>(
    slot: &'static LocalKey<Cell<Vec<u32>>>,
    f: impl FnOnce(&mut Vec<u32>) -> R,
) -> R {
    let mut buf = slot.take();
    let out = f(&mut buf);
    slot.set(buf);
    out
}

/// `buf` with room for at least `len` values (new room zeroed, old contents kept).
fn grow(buf: &mut Vec<u32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// `out (m, n) = a (m, k) @ b (k, n)`, row-major `out`, by the packed AVX512_BF16 GEMM.
///
/// `b` is packed by blocks of at most [`NB`] columns and [`KB`] pairs (so the packed copy
/// stays on the heap, off fresh pages); within a block, tasks of [`MC`] rows by a column
/// range pack their rows of `a` and run the microkernel. When `k` spans several blocks,
/// each task's f32 sums persist between them (the column blocks are then narrowed so those
/// sums stay within 16 MiB).
///
/// `None`, writing nothing, where neither runs: no AMX tiles (nor their emulator), and no
/// AVX512_BF16 or `vdpbf16ps` slower than the f32 GEMM on widened operands
/// (`isa::bf16_dot_pays`). Otherwise which one ran.
pub(crate) fn gemm(
    a: &Mat<u16>,
    b: &Mat<u16>,
    [m, k, n]: [usize; 3],
    out: &mut [MaybeUninit<u16>],
) -> Option<Bf16Gemm> {
    if let Some(backend) = amx::bf16_backend() {
        amx_bf16::gemm(backend, a, b, [m, k, n], out);
        return Some(Bf16Gemm::Amx);
    }
    #[cfg(target_arch = "x86_64")]
    if bf16_dot_pays() {
        gemm_avx512(a, b, [m, k, n], out);
        return Some(Bf16Gemm::Dot);
    }
    let _ = (a, b, m, k, n, out);
    None
}

/// Whether a bf16 GEMM runs on this machine (see [`gemm`]).
pub(crate) fn runs() -> bool {
    amx::bf16_backend().is_some() || bf16_dot_pays()
}

/// Which bf16 GEMM ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bf16Gemm {
    /// AMX tiles or their emulator (`amx_bf16`).
    Amx,
    /// AVX512_BF16 `vdpbf16ps`.
    Dot,
}

#[cfg(target_arch = "x86_64")]
fn gemm_avx512(a: &Mat<u16>, b: &Mat<u16>, [m, k, n]: [usize; 3], out: &mut [MaybeUninit<u16>]) {
    let kp_all = k.div_ceil(2);
    let nb_max = if kp_all <= KB {
        NB
    } else {
        ((4 << 20) / m.max(1) / NR * NR).clamp(NR, NB)
    };
    let dst = Out::new(out.as_mut_ptr());
    with_scratch(&PACKED_B, |bp| {
        for jb in (0..n).step_by(nb_max) {
            let nb = nb_max.min(n - jb);
            let panels = nb.div_ceil(NR);
            // Tasks of MC rows by `width` columns, enough for every thread to stay busy.
            let row_tiles = m.div_ceil(MC);
            let want = 4 * rayon::current_num_threads();
            let col_tiles = want.div_ceil(row_tiles).clamp(1, panels);
            let width = panels.div_ceil(col_tiles) * NR;
            let tiles: Vec<Tile> = (0..m)
                .step_by(MC)
                .flat_map(|i0| {
                    (jb..jb + nb).step_by(width).map(move |j0| Tile {
                        i0,
                        rows: MC.min(m - i0),
                        j0,
                        cols: width.min(jb + nb - j0),
                    })
                })
                .collect();
            let mut sums: Vec<Vec<f32>> = vec![Vec::new(); tiles.len()]; // per task
            for pb in (0..kp_all).step_by(KB) {
                let kpb = KB.min(kp_all - pb);
                let block = Block {
                    a: a.skip_k(2 * pb, false),
                    kp: kpb,
                    k: (2 * kpb).min(k - 2 * pb), // values of k in this block
                    jb,
                    first: pb == 0,
                    last: pb + kpb == kp_all,
                };
                let b_blk = b.skip_k(2 * pb, true);
                grow(bp, panels * kpb * NR);
                bp[..panels * kpb * NR]
                    .par_chunks_mut(kpb * NR)
                    .enumerate()
                    .for_each(|(q, d)| {
                        pack_b(&b_blk, jb + q * NR, NR.min(nb - q * NR), block.k, d)
                    });
                let bp = &*bp;
                tiles
                    .par_iter()
                    .zip(sums.par_iter_mut())
                    .for_each(|(tile, sum)| run_tile(&block, bp, tile, sum, &dst, n));
            }
        }
    });
}

/// One block of `k` of a [`gemm`]: `a` from its first pair, its pairs and values, the first
/// column of its packed block of `b`, and whether it starts or ends the sums.
struct Block<'a> {
    a: Mat<'a, u16>,
    kp: usize,
    k: usize,
    jb: usize,
    first: bool,
    last: bool,
}

/// The rows and columns of the result one task computes.
struct Tile {
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
}

/// Adds one k block's products to a task's f32 sums `sum` (`(rows, cols)` padded to whole
/// panels), after packing its rows of `a`; after the last block, rounds them into `dst`, whose
/// rows are `n` long.
#[cfg(target_arch = "x86_64")]
fn run_tile(
    blk: &Block,
    bp: &[u32],
    t: &Tile,
    sum: &mut Vec<f32>,
    dst: &Out<MaybeUninit<u16>>,
    n: usize,
) {
    let mpan = t.rows.div_ceil(MR);
    let ldc = t.cols.div_ceil(NR) * NR;
    if blk.first {
        *sum = vec![0f32; mpan * MR * ldc];
    }
    // Row-major `a` with whole pairs is read in place by full panels; the rest is packed. Not
    // when its rows lie a multiple of 4 KiB apart: they would share L1 sets and evict each
    // other (packed panels are contiguous).
    let a = &blk.a;
    let direct = a.cs == 1 && blk.k.is_multiple_of(2) && !(2 * a.rs).is_multiple_of(4096);
    let packed_from = if direct { t.rows / MR } else { 0 }; // first packed panel
    with_scratch(&PACKED_A, |ap| {
        grow(ap, mpan * MR * blk.kp); // panel ip, pair p: [(ip·kp + p)·MR..]
        if packed_from < mpan {
            let i0 = t.i0 + packed_from * MR;
            let packed = &mut ap[packed_from * MR * blk.kp..];
            pack_a(a, i0, t.rows - packed_from * MR, blk.k, packed);
        }
        for j0 in (t.j0..t.j0 + t.cols).step_by(NC_MAX) {
            let npan = NC_MAX.min(t.j0 + t.cols - j0).div_ceil(NR);
            for p0 in (0..blk.kp).step_by(KC) {
                let kp = KC.min(blk.kp - p0);
                for jp in 0..npan {
                    let q = (j0 - blk.jb) / NR + jp;
                    let bpan = &bp[(q * blk.kp + p0) * NR..][..kp * NR];
                    for ip in 0..mpan {
                        let c = &mut sum[ip * MR * ldc + (j0 - t.j0) + jp * NR..];
                        debug_assert!(c.len() >= (MR - 1) * ldc + NR);
                        let (fresh, b, c) = (blk.first && p0 == 0, bpan.as_ptr(), c.as_mut_ptr());
                        if ip < packed_from {
                            // MR full rows of a, pairs p0..p0 + kp, all inside a's storage.
                            let at = a.off + (t.i0 + ip * MR) * a.rs + 2 * p0;
                            let rows = &a.s[at..at + (MR - 1) * a.rs + 2 * kp];
                            // SAFETY: `gemm` runs only where `has_bf16_dot` holds; `rows`
                            // holds the MR rows' kp pairs at stride `a.rs`, `bpan` kp·NR
                            // pairs, `c` the tile at stride `ldc`.
                            // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
                            unsafe { micro::<true>(kp, rows.as_ptr(), a.rs, b, c, ldc, fresh) };
                        } else {
                            let apan = &ap[(ip * blk.kp + p0) * MR..][..kp * MR];
                            let apan = apan.as_ptr().cast::<u16>();
                            // SAFETY: as above, with the packed panel of kp·MR pairs.
                            // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
                            unsafe { micro::<false>(kp, apan, 0, b, c, ldc, fresh) };
                        }
                    }
                }
            }
        }
    });
    if blk.last {
        for r in 0..t.rows {
            // SAFETY: row `i0 + r`, columns `j0..j0 + cols` lie inside `out (m, n)` and belong
            // to this task only.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
            let row =
                unsafe { std::slice::from_raw_parts_mut(dst.at((t.i0 + r) * n + t.j0), t.cols) };
            narrow_into(row, &sum[r * ldc..][..t.cols]);
        }
        *sum = Vec::new();
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::cpu::bf16::{from_f32, to_f32};
    use crate::kernels::cpu::isa::has_bf16_dot;

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
        if !has_bf16_dot() {
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
                    let mut out = vec![MaybeUninit::new(0u16); m * n];
                    gemm_avx512(&a, &b, [m, k, n], &mut out);
                    // SAFETY: initialized above (and written by the GEMM).
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
                    let out: Vec<u16> = out.iter().map(|x| unsafe { x.assume_init() }).collect();
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

    /// Products wider than a packed block of `b` ([`NB`] columns) and deeper than one
    /// ([`KB`] pairs), so the f32 sums carry between blocks.
    #[test]
    fn blocked_gemm_matches_a_plain_sum() {
        if !has_bf16_dot() {
            eprintln!("SKIPPED: this CPU has no AVX512_BF16; the packed GEMM cannot run here");
            return;
        }
        for [m, k, n] in [[7, 4099, 2050], [13, 2 * 2 * KB + 3, 40]] {
            let (sa, sb) = (grid(m * k, 3), grid(k * n, 4));
            let a = Mat {
                s: &sa,
                off: 0,
                rs: k,
                cs: 1,
            };
            let b = Mat {
                s: &sb,
                off: 0,
                rs: n,
                cs: 1,
            };
            let mut out = vec![MaybeUninit::new(0u16); m * n];
            gemm_avx512(&a, &b, [m, k, n], &mut out);
            for i in 0..m {
                for j in (0..n).step_by(7) {
                    let want =
                        (0..k).fold(0f32, |s, p| s + to_f32(a.at(i, p)) * to_f32(b.at(p, j)));
                    // SAFETY: initialized above.
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by its tests below and tests/kernels_bf16.rs.
                    let got = unsafe { out[i * n + j].assume_init() };
                    assert_eq!(got, from_f32(want), "[{m}, {k}, {n}] at ({i}, {j})");
                }
            }
        }
    }

    /// Products run from inside rayon tasks (a caller's own parallelism), many at once on the
    /// pool that also runs their own tasks: every one gives the right answer.
    #[test]
    fn products_inside_parallel_tasks_keep_their_own_buffers() -> crate::Result<()> {
        use crate::{DType, Device, Tensor};
        let a = Tensor::randn(&[300, 96], DType::F32, Device::Cpu)?.to_dtype(DType::BF16)?;
        let b = Tensor::randn(&[96, 700], DType::F32, Device::Cpu)?.to_dtype(DType::BF16)?;
        let want = a.matmul(&b)?.to_vec::<f32>()?;
        (0..24)
            .into_par_iter()
            .try_for_each(|_| -> crate::Result<()> {
                assert_eq!(a.matmul(&b)?.to_vec::<f32>()?, want);
                Ok(())
            })
    }
}
