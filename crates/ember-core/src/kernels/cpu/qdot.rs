//! Products of f32 activations `(M, K)` with a repacked quantized weight `(N, K)`:
//! `y = x wᵀ (+ bias)`, the activations quantized to 8-bit blocks first (`qpack`).
//!
//! Two implementations of the same arithmetic, bit for bit: AVX512-VNNI (`vpdpbusd`, 16 rows
//! of the weight per vector, chosen at run time) and a portable one. Per record and
//! activation row, the integer sum of `q * a` becomes f32 and is added as `fma(sum, d * s,
//! acc)`, then the offsets as `fma(m, s * Σa, acc)`, in the same order in both. Row groups are
//! split over rayon's pool, so one decoded token keeps every thread busy.

use rayon::prelude::*;

use super::qpack::{ActBlock, Codes, Packed, ROWS, quantize_row};
use super::spin;

/// Activation rows processed together (each decoded weight vector is used this many times).
const TILE_M: usize = 4;

/// Whether the AVX512-VNNI kernel runs here (`EMBER_SIMD` below AVX-512 turns it off).
pub(crate) fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            super::simd::simd_level() == 2 && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Output pointer shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint elements (their own row groups' columns).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The element at `i` (a method, so closures capture the whole `Out`).
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// `out (m, p.rows) = x (m, p.cols) · wᵀ + bias`; `vnni` picks the kernel (tests run both).
pub(crate) fn qlinear(
    p: &Packed,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    vnni: bool,
) {
    let (n, k, blocks) = (p.rows, p.cols, p.blocks());
    debug_assert!(x.len() == m * k && out.len() == m * n);
    let mut acts = vec![ActBlock::default(); m * blocks];
    if m <= 8 {
        for (a, x) in acts.chunks_exact_mut(blocks).zip(x.chunks_exact(k)) {
            quantize_row(x, a);
        }
    } else {
        acts.par_chunks_mut(blocks)
            .zip(x.par_chunks(k))
            .for_each(|(a, x)| quantize_row(x, a));
    }
    let groups = p.groups();
    // Enough tasks for every thread, each a few rows groups long.
    let tasks = (rayon::current_num_threads() * 4).min(groups).max(1);
    let out_ptr = Out(out.as_mut_ptr());
    spin::run(tasks, &|t| {
        let (g0, g1) = (groups * t / tasks, groups * (t + 1) / tasks);
        for g in g0..g1 {
            let mut i = 0;
            while i < m {
                let rows = TILE_M.min(m - i);
                let acts = &acts[i * blocks..(i + rows) * blocks];
                let mut acc = [[0f32; ROWS]; TILE_M];
                #[cfg(target_arch = "x86_64")]
                if vnni {
                    // SAFETY: `has_vnni` checked the CPU; sizes as documented.
                    unsafe { vnni::group(p, g, acts, rows, &mut acc) };
                } else {
                    portable_group(p, g, acts, rows, &mut acc);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = vnni;
                    portable_group(p, g, acts, rows, &mut acc);
                }
                for (mi, acc) in acc.iter().take(rows).enumerate() {
                    for (r, &v) in acc.iter().enumerate().take(ROWS.min(n - g * ROWS)) {
                        let col = g * ROWS + r;
                        let v = v + bias.map_or(0.0, |b| b[col]);
                        // SAFETY: row i + mi < m, column col < n: inside `out`, and only
                        // this task writes the columns of group g.
                        unsafe { *out_ptr.at((i + mi) * n + col) = v };
                    }
                }
                i += rows;
            }
        }
    });
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Code of row `r`, column `c` of a record.
#[inline(always)]
fn code(q: &[u8], codes: Codes, r: usize, c: usize) -> i32 {
    let (kq, j) = (c / 4, c % 4);
    match codes {
        Codes::Nibble if kq < 4 => (q[64 * kq + 4 * r + j] & 0xF) as i32,
        Codes::Nibble => (q[64 * (kq - 4) + 4 * r + j] >> 4) as i32,
        _ => q[64 * kq + 4 * r + j] as i32,
    }
}

/// The portable kernel: the VNNI kernel's arithmetic, one lane at a time.
fn portable_group(
    p: &Packed,
    g: usize,
    acts: &[ActBlock],
    rows: usize,
    acc: &mut [[f32; ROWS]; TILE_M],
) {
    let (codes, blocks) = (p.codes, p.blocks());
    let rec = codes.record_bytes();
    let halves = codes.halves();
    for (b, record) in p.group(g).chunks_exact(rec).enumerate() {
        let (scales, q) = record.split_at(64 * halves);
        for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
            let a = &acts[mi * blocks + b];
            for (r, acc) in acc.iter_mut().enumerate() {
                let span = 32 / halves;
                let mut sums = [0i32; 2];
                for c in 0..32 {
                    sums[c / span] += code(q, codes, r, c) * a.q[c] as i32;
                }
                for (h, &s) in sums.iter().enumerate().take(halves) {
                    let d = f16_at(scales, 32 * h + 2 * r);
                    *acc = (s as f32).mul_add(d * a.scale, *acc);
                }
                for h in 0..halves {
                    let m = f16_at(scales, 32 * (halves + h) + 2 * r);
                    let sum = if halves == 2 { a.sums[h] } else { a.sums[2] };
                    *acc = m.mul_add(sum, *acc);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{ActBlock, Codes, Packed, ROWS, TILE_M};

    /// Codes of a record as eight vectors of u8 (columns `4i..4i+4` of the 16 rows).
    #[inline(always)]
    unsafe fn load_codes(q: *const u8, codes: Codes) -> [__m512i; 8] {
        unsafe {
            if codes == Codes::Nibble {
                let low = _mm512_set1_epi8(0x0F);
                let v: [__m512i; 4] =
                    std::array::from_fn(|i| _mm512_loadu_si512(q.add(64 * i).cast()));
                std::array::from_fn(|i| {
                    if i < 4 {
                        _mm512_and_si512(v[i], low)
                    } else {
                        _mm512_and_si512(_mm512_srli_epi16::<4>(v[i - 4]), low)
                    }
                })
            } else {
                std::array::from_fn(|i| _mm512_loadu_si512(q.add(64 * i).cast()))
            }
        }
    }

    /// 4 codes of an activation block, broadcast to every lane.
    #[inline(always)]
    unsafe fn quad(a: &ActBlock, i: usize) -> __m512i {
        let v = i32::from_le_bytes(std::array::from_fn(|j| a.q[4 * i + j] as u8));
        // SAFETY: callers run with AVX-512 enabled.
        unsafe { _mm512_set1_epi32(v) }
    }

    /// Accumulates row group `g` against `rows` activation rows into `acc`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")]
    pub(super) unsafe fn group(
        p: &Packed,
        g: usize,
        acts: &[ActBlock],
        rows: usize,
        out: &mut [[f32; ROWS]; TILE_M],
    ) {
        let (codes, blocks) = (p.codes, p.blocks());
        let (rec, halves) = (codes.record_bytes(), codes.halves());
        let data = p.group(g);
        let mut acc = [_mm512_setzero_ps(); TILE_M];
        for b in 0..blocks {
            // SAFETY: record b of the group lies inside `data` (`Packed::group`).
            unsafe {
                let record = data.as_ptr().add(b * rec);
                let w = load_codes(record.add(64 * halves), codes);
                let scale =
                    |h: usize| _mm512_cvtph_ps(_mm256_loadu_si256(record.add(32 * h).cast()));
                for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
                    let a = &acts[mi * blocks + b];
                    if halves == 1 {
                        let mut s = _mm512_setzero_si512();
                        for (i, w) in w.iter().enumerate() {
                            s = _mm512_dpbusd_epi32(s, *w, quad(a, i));
                        }
                        let ds = _mm512_mul_ps(scale(0), _mm512_set1_ps(a.scale));
                        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds, *acc);
                        *acc = _mm512_fmadd_ps(scale(1), _mm512_set1_ps(a.sums[2]), *acc);
                    } else {
                        let mut s = [_mm512_setzero_si512(); 2];
                        for (i, w) in w.iter().enumerate() {
                            s[i / 4] = _mm512_dpbusd_epi32(s[i / 4], *w, quad(a, i));
                        }
                        for (h, s) in s.iter().enumerate() {
                            let ds = _mm512_mul_ps(scale(h), _mm512_set1_ps(a.scale));
                            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(*s), ds, *acc);
                        }
                        for h in 0..2 {
                            let m = scale(2 + h);
                            *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(a.sums[h]), *acc);
                        }
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc).take(rows) {
            // SAFETY: `o` is 16 f32.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
        }
    }
}
