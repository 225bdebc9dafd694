//! AMX tiles: which backend runs them, the Linux permission, and the micro-kernels the tiled
//! products call (`gemm::amx_bf16`).
//!
//! A micro-kernel computes one block of the result in four tile registers and runs on either
//! backend: the real tiles through `asm!` (stable Rust has no AMX intrinsics), or the scalar
//! [`emulator`] with the instructions' exact semantics. Both run the same instructions in the
//! same order on the same memory, so a product's packing, tiling and edges are tested on every
//! machine (`EMBER_SIMD=amx-emulated`, and the unit tests, which pick the emulator directly),
//! and the `asm!` blocks stay a few dozen lines that only the tiles themselves can check.
//!
//! | file | what |
//! |---|---|
//! | `emulator` | the scalar tile machine |
//! | `tiles` | the `asm!` micro-kernels (x86_64) |

pub(crate) mod emulator;
#[cfg(target_arch = "x86_64")]
mod tiles;

use emulator::{Emulator, TileConfig, TileShape};

pub(crate) use super::isa::AmxBackend as Backend;
use super::isa::{self, AmxMode};

/// The backend of the AMX bf16 products on this machine, if any: the emulator when
/// `EMBER_SIMD=amx-emulated`; the tiles when the CPU has AMX-BF16, `EMBER_SIMD` does not cap
/// below AMX and the OS grants the tile state.
pub(crate) fn bf16_backend() -> Option<Backend> {
    backend(isa::isa().amx_bf16)
}

/// As [`bf16_backend`], for the int8 products (AMX-INT8).
pub(crate) fn int8_backend() -> Option<Backend> {
    backend(isa::isa().amx_int8)
}

fn backend(has: bool) -> Option<Backend> {
    match isa::amx_mode() {
        AmxMode::Emulated => Some(Backend::Emulated),
        AmxMode::Hardware if has && tile_permission() => Some(Backend::Tiles),
        _ => None,
    }
}

/// Asks Linux once for the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`): without
/// it the first tile instruction kills the process. Refused (old kernel, seccomp): `false`,
/// and the products use the other kernels.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn tile_permission() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: `arch_prctl` with this request only widens the set of state components the
        // process may use; it reads and writes no memory of ours.
        // Exercised by `tile_permission_is_asked_once` below (on every machine; a CPU without
        // AMX answers with an error, which is the fallback).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        rc == 0
    })
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
fn tile_permission() -> bool {
    false
}

/// Rows and columns of the f32 block one bf16 micro-kernel call computes: 2×2 tiles of 16×16.
pub(crate) const BLOCK: usize = 32;
/// Pairs along `k` per tile step (a tile row of `a`: 32 bf16).
pub(crate) const KSTEP: usize = 16;
/// Pairs per row of a packed panel of `b` (`gemm::pack_bf16::NR`, checked there): a tile of
/// `b` reads 16 of them.
pub(crate) const PANEL: usize = 64;

const FULL: TileShape = TileShape {
    rows: 16,
    colsb: 64,
};

/// tmm0–3: the f32 block `c` (16×16 each); tmm4–5: 16 rows of `a` by 16 pairs; tmm6–7: 16
/// pairs of `b` by 16 columns.
pub(crate) static BF16_CONFIG: TileConfig = TileConfig::new([FULL; 8]);

/// `c (32×32 f32, row-major) (+)= a @ b` over `kp` pairs (a multiple of [`KSTEP`]): row `r` of
/// `a` is `2·kp` bf16 at `a[r·lda..]`; pair `p` of `b`'s 32 columns is `b[p·PANEL..][..32]`.
/// `c` is read unless `first`.
///
/// Panics when the slices are too short for those reads (the tiles would read past them).
pub(crate) fn bf16_block(
    backend: Backend,
    kp: usize,
    a: &[u16],
    lda: usize,
    b: &[u32],
    c: &mut [f32; BLOCK * BLOCK],
    first: bool,
) {
    assert!(
        kp > 0 && kp.is_multiple_of(KSTEP) && lda >= 2 * kp,
        "amx bf16 block: kp {kp}, lda {lda}"
    );
    assert!(
        a.len() >= (BLOCK - 1) * lda + 2 * kp,
        "amx bf16 block: a too short"
    );
    assert!(
        b.len() >= (kp - 1) * PANEL + BLOCK,
        "amx bf16 block: b too short"
    );
    match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::Tiles => {
            // SAFETY: `Tiles` is chosen only where the CPU has AMX-BF16 and Linux granted the
            // tile state; the asserts above bound every row the tiles load, and `c` holds the
            // 32×32 block.
            // Exercised by `gemm::amx_bf16`'s tests where the CPU has AMX (skipped loudly
            // elsewhere; the emulator runs the same reads there, bounds-checked).
            unsafe {
                tiles::bf16_block(
                    kp / KSTEP,
                    a.as_ptr(),
                    2 * lda,
                    b.as_ptr(),
                    c.as_mut_ptr(),
                    first,
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Backend::Tiles => unreachable!("no AMX tiles off x86_64"),
        Backend::Emulated => emulated_bf16_block(kp, a, lda, b, c, first),
    }
}

/// [`bf16_block`] on the emulator, instruction for instruction as `tiles::bf16_block`.
fn emulated_bf16_block(
    kp: usize,
    a: &[u16],
    lda: usize,
    b: &[u32],
    c: &mut [f32; BLOCK * BLOCK],
    first: bool,
) {
    let mut e = Emulator::ldtilecfg(&BF16_CONFIG);
    let (ab, bb): (&[u8], &[u8]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
    let cb: &mut [u8] = bytemuck::cast_slice_mut(c.as_mut_slice());
    let (ldc, lda, ldb) = (4 * BLOCK, 2 * lda, 4 * PANEL); // bytes per row
    let c_at = [0, 64, 16 * ldc, 16 * ldc + 64];
    for (t, &at) in c_at.iter().enumerate() {
        if first {
            e.tilezero(t);
        } else {
            e.tileloadd(t, cb, at, ldc);
        }
    }
    for step in 0..kp / KSTEP {
        e.tileloadd(4, ab, 64 * step, lda);
        e.tileloadd(5, ab, 16 * lda + 64 * step, lda);
        e.tileloadd(6, bb, 16 * ldb * step, ldb);
        e.tileloadd(7, bb, 16 * ldb * step + 64, ldb);
        e.tdpbf16ps(0, 4, 6);
        e.tdpbf16ps(1, 4, 7);
        e.tdpbf16ps(2, 5, 6);
        e.tdpbf16ps(3, 5, 7);
    }
    for (t, &at) in c_at.iter().enumerate() {
        e.tilestored(t, cb, at, ldc);
    }
}

/// Shapes of the int8 micro-kernel, one sum per 32 columns: tmm0 the i32 sums (16 activation
/// rows × 16 weight rows), tmm1 16 activation rows × 32 codes, tmm2 the weight's 8 dword rows.
pub(crate) static INT8_CONFIG: TileConfig = TileConfig::new([
    FULL,
    TileShape {
        rows: 16,
        colsb: 32,
    },
    TileShape { rows: 8, colsb: 64 },
    TileShape { rows: 0, colsb: 0 },
    TileShape { rows: 0, colsb: 0 },
    TileShape { rows: 0, colsb: 0 },
    TileShape { rows: 0, colsb: 0 },
    TileShape { rows: 0, colsb: 0 },
]);

/// As [`INT8_CONFIG`] with a sum per 16 columns: tmm0–1 the sums of each half, tmm2–3 16
/// activation rows × 16 codes, tmm4–5 the weight's 4 dword rows of each half.
pub(crate) static INT8_HALVES_CONFIG: TileConfig = TileConfig::new([
    FULL,
    FULL,
    TileShape {
        rows: 16,
        colsb: 16,
    },
    TileShape {
        rows: 16,
        colsb: 16,
    },
    TileShape { rows: 4, colsb: 64 },
    TileShape { rows: 4, colsb: 64 },
    TileShape { rows: 0, colsb: 0 },
    TileShape { rows: 0, colsb: 0 },
]);

/// Integer sums of 16 activation rows with 16 weight rows, for `blocks` blocks of 32 columns,
/// each block's sums alone (`tdpbsud`: signed activations × unsigned codes): activation row
/// `i`'s codes of block `b` are `a[i·lda + 32b..][..32]`; the weight's codes of block `b` are
/// `codes[b·code_step..][..512]`, 4 columns of the 16 rows per 64 bytes (byte `64c + 4r + j`
/// is row `r`, column `4c + j`). With `halves == 2` the 16-column halves are summed apart.
/// Writes `sums[((b·halves + h)·16 + i)·16 + r]`.
///
/// Panics when the slices are too short for those reads and writes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_sums(
    backend: Backend,
    halves: usize,
    blocks: usize,
    a: &[i8],
    lda: usize,
    codes: &[u8],
    code_step: usize,
    sums: &mut [i32],
) {
    assert!(
        blocks > 0 && (halves == 1 || halves == 2),
        "amx int8: {blocks} blocks, {halves} halves"
    );
    assert!(
        lda >= 32 * blocks && a.len() >= 15 * lda + 32 * blocks,
        "amx int8: a too short"
    );
    assert!(
        code_step >= 512 && codes.len() >= (blocks - 1) * code_step + 512,
        "amx int8: codes too short"
    );
    assert!(
        sums.len() >= blocks * halves * 256,
        "amx int8: sums too short"
    );
    match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::Tiles => {
            // SAFETY: `Tiles` is chosen only where the CPU has AMX-INT8 and Linux granted the
            // tile state; the asserts above bound every row loaded and stored.
            // Exercised by `gemm::amx_int8`'s tests where the CPU has AMX (skipped loudly
            // elsewhere; the emulator runs the same reads there, bounds-checked).
            unsafe {
                tiles::int8_sums(
                    halves,
                    blocks,
                    a.as_ptr(),
                    lda,
                    codes.as_ptr(),
                    code_step,
                    sums.as_mut_ptr(),
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Backend::Tiles => unreachable!("no AMX tiles off x86_64"),
        Backend::Emulated => {
            let ab: &[u8] = bytemuck::cast_slice(a);
            let sb: &mut [u8] = bytemuck::cast_slice_mut(sums);
            let signs = [true, false]; // tdpbsud
            if halves == 1 {
                let mut e = Emulator::ldtilecfg(&INT8_CONFIG);
                for b in 0..blocks {
                    e.tilezero(0);
                    e.tileloadd(1, ab, 32 * b, lda);
                    e.tileloadd(2, codes, b * code_step, 64);
                    e.tdpb_d(0, 1, 2, signs);
                    e.tilestored(0, sb, 1024 * b, 64);
                }
            } else {
                let mut e = Emulator::ldtilecfg(&INT8_HALVES_CONFIG);
                for b in 0..blocks {
                    e.tilezero(0);
                    e.tilezero(1);
                    e.tileloadd(2, ab, 32 * b, lda);
                    e.tileloadd(3, ab, 32 * b + 16, lda);
                    e.tileloadd(4, codes, b * code_step, 64);
                    e.tileloadd(5, codes, b * code_step + 256, 64);
                    e.tdpb_d(0, 2, 4, signs);
                    e.tdpb_d(1, 3, 5, signs);
                    e.tilestored(0, sb, 2048 * b, 64);
                    e.tilestored(1, sb, 2048 * b + 1024, 64);
                }
            }
        }
    }
}

/// Operations per second one thread gets from AMX tiles kept in registers: `tdpbf16ps`
/// (2 FLOP per bf16 product) or, with `int8`, `tdpbusd` (2 operations per byte product),
/// timed over `iters` rounds of four independent tile products. `None` where this CPU (or
/// its OS) gives no such tiles, or `EMBER_SIMD` caps below them; the emulator is never timed.
/// The bench harness reports it as the ceiling of bf16 and int8 products.
///
/// ```
/// if let Some(flops) = ember_core::amx_peak(false, 1000) {
///     assert!(flops > 0.0);
/// }
/// ```
pub fn amx_peak(int8: bool, iters: usize) -> Option<f64> {
    let isa = isa::isa();
    let has = if int8 { isa.amx_int8 } else { isa.amx_bf16 };
    if !(has && isa::amx_allowed() && tile_permission()) || iters == 0 {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let start = std::time::Instant::now();
        // SAFETY: the CPU has the tiles (checked above) and Linux granted them.
        // Exercised by `tile_peaks_are_measured_where_there_are_tiles` on CPUs with AMX.
        unsafe { tiles::peak_loop(int8, iters) };
        let ops = (iters * 4 * 16 * 16 * if int8 { 64 } else { 32 } * 2) as f64;
        Some(ops / start.elapsed().as_secs_f64().max(1e-9))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_peaks_are_measured_where_there_are_tiles() {
        for int8 in [false, true] {
            match amx_peak(int8, 10_000) {
                Some(ops) => eprintln!(
                    "AMX {} peak: {:.0} G/s",
                    if int8 { "int8" } else { "bf16" },
                    ops / 1e9
                ),
                None => {
                    assert!(bf16_backend() != Some(Backend::Tiles) || int8);
                    eprintln!("SKIPPED: no usable AMX tiles here; no peak measured (int8: {int8})");
                }
            }
        }
    }

    #[test]
    fn tile_permission_is_asked_once() {
        let first = tile_permission();
        assert_eq!(first, tile_permission());
        if isa::isa().amx_tile {
            assert!(
                first,
                "this CPU has AMX tiles, yet Linux refused the tile state"
            );
        }
    }

    /// The emulated micro-kernel (and the real one where the CPU has AMX) against a plain f32
    /// sum, on values whose products and sums are exact.
    #[test]
    fn bf16_block_matches_a_plain_sum() {
        let (kp, lda) = (48, 100);
        let bf = |x: f32| (x.to_bits() >> 16) as u16;
        let a: Vec<u16> = (0..BLOCK * lda)
            .map(|i| bf(((i * 7) % 13) as f32 - 6.0))
            .collect();
        let b: Vec<u32> = (0..kp * PANEL)
            .map(|i| {
                let (lo, hi) = (((i * 5) % 11) as f32 - 5.0, ((i * 3) % 7) as f32 - 3.0);
                bf(lo) as u32 | (bf(hi) as u32) << 16
            })
            .collect();
        let to_f32 = |h: u16| f32::from_bits((h as u32) << 16);
        let mut want = [0f32; BLOCK * BLOCK];
        for (i, row) in want.chunks_mut(BLOCK).enumerate() {
            for (j, w) in row.iter_mut().enumerate() {
                *w = 1.0
                    + (0..kp)
                        .map(|p| {
                            let pair = b[p * PANEL + j];
                            to_f32(a[i * lda + 2 * p]) * to_f32(pair as u16)
                                + to_f32(a[i * lda + 2 * p + 1]) * to_f32((pair >> 16) as u16)
                        })
                        .sum::<f32>();
            }
        }
        let mut backends = vec![Backend::Emulated];
        match bf16_backend() {
            Some(Backend::Tiles) => backends.push(Backend::Tiles),
            _ => eprintln!("SKIPPED (real tiles): this CPU has no usable AMX-BF16; emulator only"),
        }
        for backend in backends {
            let mut c = [1f32; BLOCK * BLOCK];
            bf16_block(backend, kp, &a, lda, &b, &mut c, false);
            assert_eq!(c, want, "{backend:?}");
            bf16_block(backend, kp, &a, lda, &b, &mut c, true);
            let fresh: Vec<f32> = want.iter().map(|w| w - 1.0).collect();
            assert_eq!(c.as_slice(), fresh.as_slice(), "{backend:?}, first");
        }
    }
}
