//! The `asm!` micro-kernels on the CPU's tile registers. Each is one `asm!` block (the tile
//! registers are clobber-only, so nothing lives in them between blocks): configure, load or
//! zero the accumulators, the loop of tile loads and products, store, release. `amx::emulator`
//! runs the same sequence where the CPU has no AMX.

use std::arch::asm;

use super::{BF16_CONFIG, INT8_CONFIG, INT8_HALVES_CONFIG};

/// `c (32×32 f32, rows 128 bytes apart) (+)= a @ b` in `steps` steps of 16 pairs: tile rows of
/// `a` are `lda` bytes apart (rows 16–31 from `a + 16·lda`), tile rows of `b` 256 bytes (a
/// packed panel's row), columns 16–31 of `b` 64 bytes on. `c` is zeroed first when `first`.
///
/// # Safety
/// The CPU has AMX-BF16 and the OS granted this process the tile state; `steps > 0`; `a`
/// holds 32 rows of `32·steps` bf16 at stride `lda`, `b` `16·steps` rows of 32 pairs at stride
/// 256 bytes, `c` 1024 f32.
pub(super) unsafe fn bf16_block(
    steps: usize,
    a: *const u16,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    first: bool,
) {
    // SAFETY: the caller's contract: every address below lies inside `a`, `b` or `c`, and the
    // tile instructions exist and are permitted.
    // Exercised by `amx::tests` and `gemm::amx_bf16`'s tests where the CPU has AMX.
    unsafe {
        let a_low = a.byte_add(16 * lda);
        asm!(
            "ldtilecfg [{cfg}]",
            "test {first}, {first}",
            "jz 2f",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "jmp 3f",
            "2:",
            "tileloadd tmm0, [{c} + {ldc}*1]",
            "tileloadd tmm1, [{c} + {ldc}*1 + 64]",
            "tileloadd tmm2, [{c} + {ldc}*1 + 2048]",
            "tileloadd tmm3, [{c} + {ldc}*1 + 2112]",
            "3:",
            "tileloadd tmm4, [{a0} + {lda}*1]",
            "tileloadd tmm5, [{a1} + {lda}*1]",
            "tileloadd tmm6, [{b} + {ldb}*1]",
            "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b}, 4096",
            "dec {steps}",
            "jnz 3b",
            "tilestored [{c} + {ldc}*1], tmm0",
            "tilestored [{c} + {ldc}*1 + 64], tmm1",
            "tilestored [{c} + {ldc}*1 + 2048], tmm2",
            "tilestored [{c} + {ldc}*1 + 2112], tmm3",
            "tilerelease",
            cfg = in(reg) &BF16_CONFIG,
            first = in(reg_byte) first as u8,
            c = in(reg) c,
            ldc = in(reg) 128usize,
            a0 = inout(reg) a => _,
            a1 = inout(reg) a_low => _,
            lda = in(reg) lda,
            b = inout(reg) b => _,
            ldb = in(reg) 256usize,
            steps = inout(reg) steps => _,
            out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
            out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
            options(nostack),
        );
    }
}

/// `amx::int8_sums` on the tiles: per block, the sums zeroed, the activations' and the
/// weight's tiles loaded, `tdpbsud`, the sums stored (1 KiB per half).
///
/// # Safety
/// The CPU has AMX-INT8 and the OS granted this process the tile state; `blocks > 0`;
/// `halves` is 1 or 2; `a` holds 16 rows of `32·blocks` bytes at stride `lda`, `codes`
/// `blocks` runs of 512 bytes `code_step` apart, `sums` `blocks·halves·256` i32.
pub(super) unsafe fn int8_sums(
    halves: usize,
    blocks: usize,
    a: *const i8,
    lda: usize,
    codes: *const u8,
    code_step: usize,
    sums: *mut i32,
) {
    // SAFETY: the caller's contract: every address below lies inside `a`, `codes` or `sums`,
    // and the tile instructions exist and are permitted.
    // Exercised by `gemm::amx_int8`'s tests where the CPU has AMX.
    unsafe {
        if halves == 1 {
            asm!(
                "ldtilecfg [{cfg}]",
                "2:",
                "tilezero tmm0",
                "tileloadd tmm1, [{a} + {lda}*1]",
                "tileloadd tmm2, [{b} + {ldb}*1]",
                "tdpbsud tmm0, tmm1, tmm2",
                "tilestored [{s} + {ldb}*1], tmm0",
                "add {a}, 32",
                "add {b}, {step}",
                "add {s}, 1024",
                "dec {n}",
                "jnz 2b",
                "tilerelease",
                cfg = in(reg) &INT8_CONFIG,
                a = inout(reg) a => _,
                lda = in(reg) lda,
                b = inout(reg) codes => _,
                ldb = in(reg) 64usize,
                step = in(reg) code_step,
                s = inout(reg) sums => _,
                n = inout(reg) blocks => _,
                out("tmm0") _, out("tmm1") _, out("tmm2") _,
                options(nostack),
            );
        } else {
            asm!(
                "ldtilecfg [{cfg}]",
                "2:",
                "tilezero tmm0",
                "tilezero tmm1",
                "tileloadd tmm2, [{a} + {lda}*1]",
                "tileloadd tmm3, [{a} + {lda}*1 + 16]",
                "tileloadd tmm4, [{b} + {ldb}*1]",
                "tileloadd tmm5, [{b} + {ldb}*1 + 256]",
                "tdpbsud tmm0, tmm2, tmm4",
                "tdpbsud tmm1, tmm3, tmm5",
                "tilestored [{s} + {ldb}*1], tmm0",
                "tilestored [{s} + {ldb}*1 + 1024], tmm1",
                "add {a}, 32",
                "add {b}, {step}",
                "add {s}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilerelease",
                cfg = in(reg) &INT8_HALVES_CONFIG,
                a = inout(reg) a => _,
                lda = in(reg) lda,
                b = inout(reg) codes => _,
                ldb = in(reg) 64usize,
                step = in(reg) code_step,
                s = inout(reg) sums => _,
                n = inout(reg) blocks => _,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _,
                options(nostack),
            );
        }
    }
}

/// `iters` rounds of four independent tile products on registers alone (`tdpbf16ps`, or
/// `tdpbusd` when `int8`): the tiles' peak, for the bench harness's ceilings.
///
/// # Safety
/// The CPU has AMX-BF16 (AMX-INT8 when `int8`) and the OS granted this process the tile
/// state; `iters > 0`.
pub(super) unsafe fn peak_loop(int8: bool, iters: usize) {
    // SAFETY: the caller's contract; no memory is touched but the configuration.
    // Exercised by `amx::tests::tile_peaks_are_measured_where_there_are_tiles` with AMX.
    unsafe {
        if int8 {
            asm!(
                "ldtilecfg [{cfg}]",
                "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                "tilezero tmm4", "tilezero tmm5", "tilezero tmm6", "tilezero tmm7",
                "2:",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbusd tmm3, tmm5, tmm7",
                "dec {n}",
                "jnz 2b",
                "tilerelease",
                cfg = in(reg) &BF16_CONFIG,
                n = inout(reg) iters => _,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        } else {
            asm!(
                "ldtilecfg [{cfg}]",
                "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                "tilezero tmm4", "tilezero tmm5", "tilezero tmm6", "tilezero tmm7",
                "2:",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "dec {n}",
                "jnz 2b",
                "tilerelease",
                cfg = in(reg) &BF16_CONFIG,
                n = inout(reg) iters => _,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        }
    }
}
