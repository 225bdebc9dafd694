//! What this CPU can run: the one place Ember asks the CPU, once per process.
//!
//! Every kernel that picks an implementation by instruction set reads [`isa`] (or the
//! helpers below); nothing else calls `is_x86_feature_detected!` or `cpuid`. `EMBER_SIMD`
//! caps what is used, to test or compare the narrower kernels on a wider CPU: `baseline`
//! (no SIMD beyond the target's), `avx2` (AVX2 + FMA), `avx512` (AVX-512 and its BF16/VNNI
//! extensions, no AMX tiles); unset or `amx`, everything the CPU and the OS allow;
//! `amx-emulated`, everything, with the AMX products run on the scalar tile emulator
//! (`amx::emulator`) whatever the CPU.
//!
//! Speed decides where a vendor guess would mislead: [`bf16_dot_pays`] times `vdpbf16ps`
//! against f32 FMAs once (twice the f32 rate on AMD Zen 4, half on Intel's AMX cores).

use std::sync::OnceLock;

use super::probe;

/// The instruction sets the kernels use, as detected (before `EMBER_SIMD`'s cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Isa {
    /// AVX2 and FMA.
    pub avx2: bool,
    /// AVX-512 F, VL, DQ and BW.
    pub avx512: bool,
    /// AVX-512 runs at full width (two 512-bit FMAs a cycle): not on AMD Zen 4, whose
    /// AVX-512 is split in two 256-bit halves. Inferred from the vendor and family.
    pub avx512_full_width: bool,
    /// AVX512_BF16 (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AVX512_VNNI (`vpdpbusd`).
    pub avx512_vnni: bool,
    /// AVX512_FP16 (f16 arithmetic).
    pub avx512_fp16: bool,
    /// F16C (f16 ⇄ f32 conversions).
    pub f16c: bool,
    /// AMX tiles (CPU and OS: the tile state is enabled in XCR0).
    pub amx_tile: bool,
    /// AMX bf16 products (`tdpbf16ps`).
    pub amx_bf16: bool,
    /// AMX int8 products (`tdpbusd` and friends).
    pub amx_int8: bool,
}

/// What `EMBER_SIMD` allows: 0 baseline, 1 AVX2, 2 AVX-512, 3 AVX-512 and AMX.
fn cap() -> u8 {
    match std::env::var("EMBER_SIMD").as_deref() {
        Ok("baseline") => 0,
        Ok("avx2") => 1,
        Ok("avx512") => 2,
        _ => 3,
    }
}

/// Where tile instructions run (`amx::bf16_backend` and `amx::int8_backend` choose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AmxBackend {
    /// The CPU's tile registers.
    Tiles,
    /// The scalar emulator (`EMBER_SIMD=amx-emulated`, and tests).
    Emulated,
}

/// How the AMX products may run, after `EMBER_SIMD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AmxMode {
    /// Not at all (capped below AMX).
    Off,
    /// On the CPU's tiles where it has them (and the OS grants them).
    Hardware,
    /// On the scalar emulator, on any CPU (`EMBER_SIMD=amx-emulated`).
    Emulated,
}

/// How the AMX products may run (read once).
pub(crate) fn amx_mode() -> AmxMode {
    static MODE: OnceLock<AmxMode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("EMBER_SIMD").as_deref() {
        Ok("amx-emulated") => AmxMode::Emulated,
        _ if cap() >= 3 => AmxMode::Hardware,
        _ => AmxMode::Off,
    })
}

/// This CPU's instruction sets, detected once.
pub(crate) fn isa() -> &'static Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    ISA.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    let avx512 = has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw");
    let (l0, l1) = (__cpuid(0), __cpuid(1));
    let (vendor, max_leaf) = ([l0.ebx, l0.edx, l0.ecx], l0.eax);
    let base = (l1.eax >> 8) & 0xf;
    let family = if base == 0xf {
        base + ((l1.eax >> 20) & 0xff)
    } else {
        base
    };
    const AMD: [u32; 3] = [
        u32::from_le_bytes(*b"Auth"),
        u32::from_le_bytes(*b"enti"),
        u32::from_le_bytes(*b"cAMD"),
    ];
    let amd = vendor == AMD;
    let edx7 = if max_leaf >= 7 {
        __cpuid_count(7, 0).edx
    } else {
        0
    };
    let xcr0 = if l1.ecx & (1 << 27) != 0 {
        // SAFETY: the OS enabled XSAVE (CPUID.1:ECX.OSXSAVE), so `xgetbv` exists and may run.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by its test below.
        unsafe { _xgetbv(0) }
    } else {
        0
    };
    let tiles_enabled = xcr0 & (0b11 << 17) == 0b11 << 17; // XTILECFG and XTILEDATA
    let amx_tile = edx7 & (1 << 24) != 0 && tiles_enabled;
    Isa {
        avx2: has!("avx2") && has!("fma"),
        avx512,
        avx512_full_width: avx512 && !(amd && family == 0x19),
        avx512_bf16: avx512 && has!("avx512bf16"),
        avx512_vnni: avx512 && has!("avx512vnni"),
        avx512_fp16: avx512 && edx7 & (1 << 23) != 0,
        f16c: has!("f16c"),
        amx_tile,
        amx_bf16: amx_tile && edx7 & (1 << 22) != 0,
        amx_int8: amx_tile && edx7 & (1 << 25) != 0,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::default()
}

/// The widest vector extension the SIMD kernels use: 2 = AVX-512, 1 = AVX2 + FMA, 0 = the
/// baseline (after `EMBER_SIMD`'s cap).
pub(crate) fn simd_level() -> u8 {
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let isa = isa();
        let detected = match (isa.avx2, isa.avx512) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        };
        detected.min(cap())
    })
}

/// True when the AVX-512 kernels run and the CPU has `vdpbf16ps` (AVX512_BF16).
pub(crate) fn has_bf16_dot() -> bool {
    simd_level() == 2 && isa().avx512_bf16
}

/// The integer dot-product kernels of the quantized products, widest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Int8Dot {
    /// AMX tiles (`tdpbsud`, 16 activation rows × 16 weight rows per tile) or their
    /// emulator, for products of more than `gemm::FEW_ROWS` rows: bit-identical to `Vnni`.
    Amx(AmxBackend),
    /// AVX512-VNNI `vpdpbusd`, 16 rows per vector.
    Vnni,
    /// AVX2 `vpmaddubsw` + `vpmaddwd`, 8 rows per vector (8-bit codes by sign and magnitude,
    /// so no pair sum saturates).
    Avx2,
    /// WebAssembly SIMD128 (`i32x4.dot_i16x8_s`), 16 rows per record (builds with
    /// `-C target-feature=+simd128`).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
    /// Plain Rust.
    Portable,
}

/// True when f32 products run Ember's SIMD128 GEMM (`gemm::f32_simd128`): WebAssembly built
/// with SIMD128, unless `EMBER_SIMD=baseline` (then the `gemm` crate's kernels run).
pub(crate) fn simd128_gemm() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && *ON.get_or_init(|| cap() > 0)
}

/// The widest integer dot-product kernel this CPU runs (f16 scales need F16C).
pub(crate) fn int8_dot() -> Int8Dot {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if cap() > 0 {
        return Int8Dot::Simd128;
    }
    let isa = isa();
    match simd_level() {
        2 if isa.avx512_vnni && isa.f16c => Int8Dot::Vnni,
        1.. if isa.f16c => Int8Dot::Avx2,
        _ => Int8Dot::Portable,
    }
}

/// True when AMX tiles may be used: the CPU and OS have them and `EMBER_SIMD` does not cap
/// below them. (Linux also asks each process to request the tile state once before use:
/// `amx::bf16_backend`.)
pub(crate) fn amx_allowed() -> bool {
    isa().amx_tile && amx_mode() == AmxMode::Hardware
}

/// True when the packed `vdpbf16ps` GEMM beats the f32 GEMM on widened operands: the AVX-512
/// kernels run, the CPU has AVX512_BF16, and one `vdpbf16ps` (32 multiply-adds) takes less
/// than two f32 FMAs (16 each), timed once on this core (`probe`). On AMD Zen 4/5 it takes
/// about one; on Intel's AMX cores about four, and bf16 products widen into the f32 GEMM
/// there when no tiles are usable.
pub(crate) fn bf16_dot_pays() -> bool {
    static PAYS: OnceLock<bool> = OnceLock::new();
    *PAYS.get_or_init(|| has_bf16_dot() && probe::dot_cost_ratio(isa().avx512_bf16) < 2.0)
}

/// What Ember's CPU kernels use on this machine, for reports next to a figure: the SIMD level
/// (after `EMBER_SIMD`), and which of AVX512_BF16, AVX512_VNNI, AVX512_FP16 and AMX they may
/// use. `ember-bench` prints it with the CPU's name.
///
/// ```
/// let line = ember_core::cpu_kernels();
/// assert!(line.starts_with("simd "));
/// ```
pub fn cpu_kernels() -> String {
    let isa = isa();
    let level = match simd_level() {
        2 if isa.avx512_full_width => "avx512",
        2 => "avx512 (half-width datapath)",
        1 => "avx2",
        _ => "baseline",
    };
    let wide = simd_level() == 2;
    let mut line = format!("simd {level}");
    for (on, name) in [
        (wide && isa.avx512_bf16, "avx512_bf16"),
        (wide && isa.avx512_vnni, "avx512_vnni"),
        (wide && isa.avx512_fp16, "avx512_fp16"),
        (amx_allowed() && isa.amx_bf16, "amx_bf16"),
        (amx_allowed() && isa.amx_int8, "amx_int8"),
        (amx_mode() == AmxMode::Emulated, "amx_emulated"),
        (
            has_bf16_dot() && !bf16_dot_pays(),
            "bf16_dot_slower_than_f32",
        ),
    ] {
        if on {
            line.push(' ');
            line.push_str(name);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_agrees_with_the_standard_library() {
        let isa = isa();
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(isa.avx2, std::arch::is_x86_feature_detected!("avx2"));
            assert_eq!(
                isa.avx512_bf16,
                isa.avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
            );
        }
        assert!(!isa.amx_bf16 || isa.amx_tile);
        assert!(simd_level() <= 2);
    }

    #[test]
    fn the_dot_product_ratio_is_a_time_ratio() {
        let r = probe::dot_cost_ratio(isa().avx512_bf16);
        eprintln!("vdpbf16ps / FMA time on this core: {r:.2}");
        assert!(r > 0.0);
        assert_eq!(
            r.is_finite(),
            cfg!(target_arch = "x86_64") && isa().avx512_bf16
        );
    }
}
