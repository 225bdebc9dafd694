//! The f32 GEMM on WebAssembly SIMD128: `dst (m, n) (+)= a (m, k) @ b (k, n)`, packed panels
//! and a 4×8 microkernel, for the browser build (natively the `gemm` crate's AVX-512 kernels
//! run: `gemm::f32`).
//!
//! Blocking as in BLIS: `b` is packed `KC × NC` at a time into panels of `NR` columns (each
//! panel `KC × NR`, row by row), `a` `MC × KC` at a time into panels of `MR` rows (each
//! `KC × MR`, column by column); the microkernel keeps one `b` panel in L1 while it walks the
//! `a` panels. Edges are packed with zeros and their tiles written through a small buffer.
//!
//! Why 4×8 and not a larger tile: wasm engines map `v128` locals to the host's 16 XMM
//! registers (V8 keeps one as scratch). 8 accumulators, 2 vectors of `b`, a splat of `a` and a
//! product stay in registers; the `gemm` crate's 16×3 SIMD128 kernel needs 12 accumulators
//! plus its operands and spills. On AMD Zen 5: ~59 GFLOP/s for the 4×8 tile in a
//! microbenchmark in headless Chromium 156; in MiniLM's forward under Node 20 about 48 against
//! ~35 for that kernel (`bench/web/README.md`).
//!
//! WebAssembly has no fused multiply-add (only relaxed SIMD's, whose rounding depends on the
//! host), so each step is a product rounded then a sum rounded: sums of `k` terms in order,
//! within the kernel tests' tolerance of the composed f64 product.

use core::arch::wasm32::*;
use std::mem::MaybeUninit;

use super::Mat;

/// Rows of a micro-tile (splats of packed `a`).
const MR: usize = 4;
/// Columns of a micro-tile (two `f32x4` of packed `b`).
const NR: usize = 8;
/// Depth packed at once: a `b` panel is `KC × NR` f32 = 8 KiB, in L1.
const KC: usize = 256;
/// Rows of `a` packed at once (a multiple of `MR`): 128 KiB, in L2.
const MC: usize = 128;
/// Columns of `b` packed at once (a multiple of `NR`): 1 MiB.
const NC: usize = 1024;

/// `dst (m, n) = a (m, k) @ b (k, n)`, or `dst += a @ b` when `add`; `dst` row-major. The
/// caller has checked that every element of `a` and `b` reachable from their offsets lies
/// inside their slices (`Mat`).
///
/// # Safety
/// When `add`, every element of `dst` is initialized.
pub(crate) unsafe fn gemm(
    dst: &mut [MaybeUninit<f32>],
    a: &Mat<f32>,
    b: &Mat<f32>,
    [m, k, n]: [usize; 3],
    add: bool,
) {
    assert_eq!(dst.len(), m * n, "gemm::f32_simd128: dst is not (m, n)");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            dst.fill(MaybeUninit::new(0.0));
        }
        return;
    }
    // Sized for this product (attention's are small: `k` is a head's width).
    let mut packed_b = vec![0f32; KC.min(k) * NC.min(n.next_multiple_of(NR))];
    let mut packed_a = vec![0f32; KC.min(k) * MC.min(m.next_multiple_of(MR))];
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_b(&mut packed_b, b, p0, kc, j0, nc);
            // The first block of `k` writes (or adds into an existing `dst`), the rest add.
            let load = add || p0 > 0;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_a(&mut packed_a, a, i0, mc, p0, kc);
                for jr in (0..nc).step_by(NR) {
                    let pb = &packed_b[jr * kc..(jr + NR) * kc]; // panel jr / NR
                    for ir in (0..mc).step_by(MR) {
                        let pa = &packed_a[ir * kc..(ir + MR) * kc]; // panel ir / MR
                        let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                        let at = (i0 + ir) * n + j0 + jr; // the tile's first element
                        if rows == MR && cols == NR {
                            let c = dst[at..].as_mut_ptr().cast::<f32>();
                            // SAFETY: the tile's rows `i0 + ir .. + MR` < m and columns
                            // `j0 + jr .. + NR` <= n lie inside the row-major (m, n) `dst`,
                            // which `c` (from `dst[at..]`) covers; read only when `load`, and
                            // then initialized (the caller's `add`, or an earlier block).
                            // Exercised by tests/kernels_products.rs under Node (scripts/test_wasm.sh).
                            unsafe { tile(kc, pa, pb, c, n, load) };
                        } else {
                            edge(&mut dst[at..], n, [rows, cols], kc, pa, pb, load);
                        }
                    }
                }
            }
        }
    }
}

/// A tile cut by the edge of `dst` (`rows × cols` of it from `dst[0]`, row stride `ldc`):
/// computed into a full tile on the stack, then written or added.
fn edge(
    dst: &mut [MaybeUninit<f32>],
    ldc: usize,
    [rows, cols]: [usize; 2],
    kc: usize,
    pa: &[f32],
    pb: &[f32],
    load: bool,
) {
    let mut t = [0f32; MR * NR];
    // SAFETY: `t` is a whole row-major MR × NR tile (row stride NR), never read (`load` false).
    // Exercised by tests/kernels_products.rs under Node (scripts/test_wasm.sh).
    unsafe { tile(kc, pa, pb, t.as_mut_ptr(), NR, false) };
    for r in 0..rows {
        for (d, &v) in dst[r * ldc..r * ldc + cols].iter_mut().zip(&t[r * NR..]) {
            let sum = if load {
                // SAFETY: when `load`, `dst` is initialized (see `gemm`).
                // Exercised by tests/kernels_products.rs under Node (scripts/test_wasm.sh).
                unsafe { d.assume_init() + v }
            } else {
                v
            };
            *d = MaybeUninit::new(sum);
        }
    }
}

/// The microkernel: `c (MR × NR, row stride ldc) (+)= pa @ pb` over `kc`, `pa` a packed `a`
/// panel (`MR` values per step of `k`), `pb` a packed `b` panel (`NR` per step).
///
/// # Safety
/// `c` is valid for writes of `MR` rows of `NR` f32 at stride `ldc`, and for reads when
/// `load` (then initialized).
#[inline(never)] // one small function: the engine allocates its registers undisturbed
unsafe fn tile(kc: usize, pa: &[f32], pb: &[f32], c: *mut f32, ldc: usize, load: bool) {
    assert!(pa.len() >= kc * MR && pb.len() >= kc * NR);
    let (mut a, mut b) = (pa.as_ptr(), pb.as_ptr());
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    for _ in 0..kc {
        // SAFETY: `kc` steps of MR (a) and NR (b) floats lie inside the panels (asserted);
        // unaligned loads are allowed.
        let (b0, b1) = unsafe { (v128_load(b.cast()), v128_load(b.add(4).cast())) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let s = unsafe { v128_load32_splat(a.add(i).cast()) };
            row[0] = f32x4_add(row[0], f32x4_mul(s, b0));
            row[1] = f32x4_add(row[1], f32x4_mul(s, b1));
        }
        // SAFETY: one step on, at most to the panels' ends.
        (a, b) = unsafe { (a.add(MR), b.add(NR)) };
    }
    for (i, row) in acc.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            // SAFETY: row i, columns 4h..4h + 4 of the tile (the caller's contract).
            unsafe {
                let q = c.add(i * ldc + 4 * h).cast::<v128>();
                v128_store(q, if load { f32x4_add(v128_load(q), v) } else { v });
            }
        }
    }
}

/// Packs `b`'s rows `p0 .. p0 + kc` and columns `j0 .. j0 + nc` into panels of `NR` columns:
/// panel `q` at `out[q·NR·kc ..]`, `NR` values per row, zeros past column `nc`.
fn pack_b(out: &mut [f32], b: &Mat<f32>, p0: usize, kc: usize, j0: usize, nc: usize) {
    let first = b.off + p0 * b.rs + j0 * b.cs;
    pack::<NR>(out, b.s, first, [nc, b.cs], [kc, b.rs]);
}

/// Packs `a`'s rows `i0 .. i0 + mc` and columns `p0 .. p0 + kc` into panels of `MR` rows:
/// panel `r` at `out[r·MR·kc ..]`, `MR` values per column, zeros past row `mc`.
fn pack_a(out: &mut [f32], a: &Mat<f32>, i0: usize, mc: usize, p0: usize, kc: usize) {
    let first = a.off + i0 * a.rs + p0 * a.cs;
    pack::<MR>(out, a.s, first, [mc, a.rs], [kc, a.cs]);
}

/// Packs `lanes` lines of `steps` values each (line `l`, step `t` at
/// `s[first + l·lane_stride + t·step_stride]`) into panels of `L` lanes: panel `q` at
/// `out[q·L·steps ..]`, `L` values per step, zeros past lane `lanes`. `b`'s lanes are its
/// columns and its steps rows; `a`'s lanes are rows and its steps columns.
fn pack<const L: usize>(
    out: &mut [f32],
    s: &[f32],
    first: usize,
    [lanes, lane_stride]: [usize; 2],
    [steps, step_stride]: [usize; 2],
) {
    for (q, panel) in out[..lanes.next_multiple_of(L) * steps]
        .chunks_exact_mut(L * steps)
        .enumerate()
    {
        let live = L.min(lanes - q * L);
        let start = |l: usize| first + (q * L + l) * lane_stride;
        if step_stride == 1 && live == L {
            // Each lane contiguous (row-major `a`, a Linear's transposed weight as `b`): L in step.
            let src: [&[f32]; L] = std::array::from_fn(|l| &s[start(l)..start(l) + steps]);
            for (t, step) in panel.chunks_exact_mut(L).enumerate() {
                for (x, line) in step.iter_mut().zip(&src) {
                    *x = line[t];
                }
            }
        } else {
            for (t, step) in panel.chunks_exact_mut(L).enumerate() {
                let at = start(0) + t * step_stride;
                if lane_stride == 1 {
                    step[..live].copy_from_slice(&s[at..at + live]);
                } else {
                    for (l, x) in step[..live].iter_mut().enumerate() {
                        *x = s[at + l * lane_stride];
                    }
                }
                step[live..].fill(0.0);
            }
        }
    }
}
