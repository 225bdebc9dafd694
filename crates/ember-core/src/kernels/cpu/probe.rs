//! Instruction timings on this core, where speed rather than the vendor picks a kernel.

/// How long one 512-bit `vdpbf16ps` takes against one 512-bit f32 FMA, both throughput-bound
/// (16 independent chains), the best of 5 rounds of each: about 1 on AMD Zen 4/5, about 4 on
/// Intel's AMX cores. `f64::INFINITY` unless `has_bf16` says the CPU has AVX512_BF16 (and
/// it is x86_64).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub(crate) fn dot_cost_ratio(has_bf16: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_bf16 {
        const ITERS: usize = 20_000;
        let best = |f: &dyn Fn() -> f32| {
            (0..5)
                .map(|_| {
                    let t = web_time::Instant::now();
                    std::hint::black_box(f());
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        // SAFETY: the CPU has AVX-512 F and BF16 (the caller's `has_bf16`, from `isa`).
        // Exercised by `isa::tests` and every bf16 product test (the first product asks).
        let dot = best(&|| unsafe { x86::dot_chains(ITERS) });
        // SAFETY: as above.
        // Exercised as above.
        let fma = best(&|| unsafe { x86::fma_chains(ITERS) });
        return dot / fma.max(1e-9);
    }
    f64::INFINITY
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    const CHAINS: usize = 16;

    /// `iters` rounds of 16 independent FMAs.
    ///
    /// # Safety
    /// The CPU has AVX512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_chains(iters: usize) -> f32 {
        let (x, y) = (
            black_box(_mm512_set1_ps(0.999)),
            black_box(_mm512_set1_ps(1e-3)),
        );
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// `iters` rounds of 16 independent `vdpbf16ps`.
    ///
    /// # Safety
    /// The CPU has AVX512F and AVX512_BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dot_chains(iters: usize) -> f32 {
        let x: __m512bh = black_box(_mm512_cvtne2ps_pbh(
            _mm512_set1_ps(0.5),
            _mm512_set1_ps(0.25),
        ));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_dpbf16_ps(*a, x, x);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }
}
