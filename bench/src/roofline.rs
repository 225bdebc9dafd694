//! What this machine can do at best, measured at start: the f32 FMA peak, the bf16
//! dot-product peak (AVX512_BF16) and the memory read bandwidth, each with a short
//! microbenchmark on the benchmark's threads; and the CPU it runs on.

use std::time::Instant;

/// The CPU as `/proc/cpuinfo` describes it.
#[derive(Debug, Clone)]
pub struct Cpu {
    /// `model name`
    pub name: String,
    /// `cpu family` (25 is Zen 3/4, 26 is Zen 5)
    pub family: String,
    /// `model`
    pub model: String,
    /// The SIMD extensions that matter here, as present.
    pub flags: Vec<&'static str>,
}

impl Cpu {
    /// Reads `/proc/cpuinfo` (fields say `unknown` elsewhere).
    pub fn read() -> Cpu {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| -> String {
            info.lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(key))
                .and_then(|l| l.split(':').nth(1))
                .map_or("unknown".into(), |v| v.trim().to_string())
        };
        let present = field("flags");
        let present: Vec<&str> = present.split_whitespace().collect();
        let wanted = [
            "avx2",
            "fma",
            "avx512f",
            "avx512_bf16",
            "avx512_vnni",
            "avx_vnni",
            "amx_bf16",
        ];
        Cpu {
            name: field("model name"),
            family: field("cpu family"),
            model: field("model"),
            flags: wanted.into_iter().filter(|f| present.contains(f)).collect(),
        }
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (family {}, model {}; {})",
            self.name,
            self.family,
            self.model,
            self.flags.join(" ")
        )
    }
}

/// The ceilings measured on this machine with `threads` threads.
#[derive(Debug, Clone, Copy)]
pub struct Roofline {
    /// f32 fused multiply-add peak, GFLOP/s.
    pub f32_gflops: f64,
    /// bf16 dot-product peak (`vdpbf16ps`), GFLOP/s; `None` without AVX512_BF16.
    pub bf16_gflops: Option<f64>,
    /// AMX bf16 tile peak (`tdpbf16ps`), GFLOP/s; `None` without usable AMX tiles.
    pub amx_bf16_gflops: Option<f64>,
    /// AMX int8 tile peak (`tdpbusd`), GOP/s; `None` without usable AMX tiles.
    pub amx_int8_gops: Option<f64>,
    /// Memory read bandwidth, GB/s.
    pub read_gbs: f64,
}

impl Roofline {
    /// Runs the three microbenchmarks (about two seconds in all); the best of a few runs each.
    pub fn measure(threads: usize) -> Roofline {
        let best = |f: &dyn Fn() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);
        Roofline {
            f32_gflops: best(&|| on_threads(threads, fma_flops)),
            bf16_gflops: bf16_available().then(|| best(&|| on_threads(threads, bf16_flops))),
            amx_bf16_gflops: ember::amx_peak(false, 1)
                .map(|_| best(&|| on_threads(threads, amx_bf16_flops))),
            amx_int8_gops: ember::amx_peak(true, 1)
                .map(|_| best(&|| on_threads(threads, amx_int8_ops))),
            read_gbs: read_bandwidth(threads),
        }
    }
}

/// Runs `work` (returning floating-point operations done) on `threads` threads at once:
/// total GFLOP/s.
fn on_threads(threads: usize, work: fn() -> f64) -> f64 {
    let start = Instant::now();
    let flops: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    flops / start.elapsed().as_secs_f64() / 1e9
}

/// Iterations of the peak loops (each thread): about 0.1 s at a few GHz.
const ITERS: usize = 8 << 20;

/// f32 FMAs on independent registers: the widest vector FMA this CPU has.
fn fma_flops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f was detected on this CPU.
            return unsafe { x86::fma_avx512(ITERS) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: avx2 and fma were detected on this CPU.
            return unsafe { x86::fma_avx2(ITERS) };
        }
    }
    scalar_fma(ITERS)
}

/// A portable stand-in: independent scalar multiply-adds.
fn scalar_fma(iters: usize) -> f64 {
    let mut acc = [1.0f32; 8];
    for _ in 0..iters {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * 8 * 2) as f64
}

fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AMX bf16 tile products on registers (`ember::amx_peak`, the same loop as Ember's kernels
/// would run), about 0.1 s: floating-point operations done.
fn amx_bf16_flops() -> f64 {
    const TILE_ITERS: usize = 1 << 20;
    let start = Instant::now();
    ember::amx_peak(false, TILE_ITERS).map_or(0.0, |rate| rate * start.elapsed().as_secs_f64())
}

/// AMX int8 tile products on registers: operations done.
fn amx_int8_ops() -> f64 {
    const TILE_ITERS: usize = 1 << 20;
    let start = Instant::now();
    ember::amx_peak(true, TILE_ITERS).map_or(0.0, |rate| rate * start.elapsed().as_secs_f64())
}

/// bf16 dot products (`vdpbf16ps`: 32 products summed pairwise into 16 f32 lanes).
fn bf16_flops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    if bf16_available() {
        // SAFETY: avx512bf16 and avx512f were detected on this CPU.
        return unsafe { x86::dpbf16(ITERS) };
    }
    0.0
}

/// Reads a 512 MiB buffer (far above any cache) split over the threads, five times: the best
/// pass in GB/s.
fn read_bandwidth(threads: usize) -> f64 {
    let data = vec![1.0f32; 128 << 20];
    let part = data.len().div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let total: f32 = std::thread::scope(|s| {
            let handles: Vec<_> = data
                .chunks(part)
                .map(|c| s.spawn(move || sum_lanes(c)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(total);
        best = best.max((data.len() * 4) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// A sum over 64 independent lanes, which LLVM vectorizes: reading is the limit, not adding.
fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 64];
    for c in xs.chunks_exact(64) {
        for l in 0..64 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The peak loops, with the intrinsics of each extension.
    use std::arch::x86_64::*;

    /// 12 independent chains of 16-lane FMAs: 12 · 16 · 2 FLOP per iteration.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: usize) -> f64 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        std::hint::black_box(_mm512_reduce_add_ps(sum));
        (iters * 12 * 16 * 2) as f64
    }

    /// 12 independent chains of 8-lane FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: usize) -> f64 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut lanes = [0f32; 8];
        for x in acc {
            let mut l = [0f32; 8];
            // SAFETY: `l` has room for 8 lanes.
            unsafe { _mm256_storeu_ps(l.as_mut_ptr(), x) };
            lanes.iter_mut().zip(l).for_each(|(s, v)| *s += v);
        }
        std::hint::black_box(lanes);
        (iters * 12 * 8 * 2) as f64
    }

    /// 12 independent chains of `vdpbf16ps`: each 32 bf16 products added into 16 lanes,
    /// 64 FLOP per instruction.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16(iters: usize) -> f64 {
        let ones = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(1e-3));
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_dpbf16_ps(*x, ones, ones);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        std::hint::black_box(_mm512_reduce_add_ps(sum));
        (iters * 12 * 64) as f64
    }
}
