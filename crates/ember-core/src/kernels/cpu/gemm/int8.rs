//! Products of f32 activations `(M, K)` with a repacked quantized weight `(N, K)`:
//! `y = x wᵀ (+ bias)`, the activations quantized to 8-bit blocks first (`pack_int8`).
//!
//! Three implementations of the same arithmetic (and on WebAssembly a fourth, SIMD128:
//! `int8_simd128`), chosen at run time (and for more than a few
//! rows, a fourth on AMX tiles: `amx_int8`, bit for bit the VNNI one): AVX512-VNNI
//! (`vpdpbusd`, 16 rows of the weight per vector) and a portable one, bit for bit, and AVX2
//! (`vpmaddubsw`, 8 rows per vector; 8-bit codes by sign and magnitude, so it adds one more
//! rounding for Q8_0). Per record and
//! activation row, the integer sum of `q * a` becomes f32 and is added as `fma(sum, d * s,
//! acc)`, then the offsets as `fma(m, s * Σa, acc)`, in the same order in both. Row groups are
//! split over rayon's pool, so one decoded token keeps every thread busy.

use super::super::isa::Int8Dot;
use super::super::par::Out;
use super::super::spin;
use super::pack_int8::{ActBlock, Codes, Packed, ROWS, TILE_M, quantize_rows};

/// `out (m, p.rows) = x (m, p.cols) · wᵀ + bias` with `kernel`.
pub(crate) fn qlinear(
    p: &Packed,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    kernel: Int8Dot,
) {
    let (n, k, blocks) = (p.rows, p.cols, p.blocks());
    debug_assert!(x.len() == m * k && out.len() == m * n);
    let mut acts = vec![ActBlock::default(); m * blocks];
    // Rows of activations per task: all of them for a few rows (decoding).
    let per_task = if m <= 8 {
        m
    } else {
        m.div_ceil(rayon::current_num_threads() * 2)
    };
    let acts_ptr = Out::new(acts.as_mut_ptr());
    spin::run(m.div_ceil(per_task), &|t| {
        let (r0, r1) = (t * per_task, ((t + 1) * per_task).min(m));
        // SAFETY: task t alone writes blocks of rows r0..r1, inside `acts`.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        let out =
            unsafe { std::slice::from_raw_parts_mut(acts_ptr.at(r0 * blocks), (r1 - r0) * blocks) };
        quantize_rows(&x[r0 * k..r1 * k], out);
    });
    if let Int8Dot::Amx(backend) = kernel {
        return super::amx_int8::qlinear(backend, p, &acts, m, bias, out);
    }
    let groups = p.groups();
    // Enough tasks for every thread, each a few rows groups long.
    let tasks = (rayon::current_num_threads() * 4).min(groups).max(1);
    let out_ptr = Out::new(out.as_mut_ptr());
    spin::run(tasks, &|t| {
        let (g0, g1) = (groups * t / tasks, groups * (t + 1) / tasks);
        for g in g0..g1 {
            let mut i = 0;
            while i < m {
                let rows = TILE_M.min(m - i);
                let acts = &acts[i * blocks..(i + rows) * blocks];
                let mut acc = [[0f32; ROWS]; TILE_M];
                match kernel {
                    // SAFETY: `isa::int8_dot` found these features on this CPU; `g` is a row
                    // group of `p`, `acts` holds `rows` rows of its blocks.
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
                    #[cfg(target_arch = "x86_64")]
                    Int8Dot::Vnni => unsafe { vnni::group(p, g, acts, rows, &mut acc) },
                    // SAFETY: as above.
                    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
                    #[cfg(target_arch = "x86_64")]
                    Int8Dot::Avx2 => unsafe { avx2::group(p, g, acts, rows, &mut acc) },
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Int8Dot::Simd128 => {
                        super::int8_simd128::group(p, g, acts, rows, &mut acc);
                    }
                    _ => portable_group(p, g, acts, rows, &mut acc),
                }
                for (mi, acc) in acc.iter().take(rows).enumerate() {
                    for (r, &v) in acc.iter().enumerate().take(ROWS.min(n - g * ROWS)) {
                        let col = g * ROWS + r;
                        let v = v + bias.map_or(0.0, |b| b[col]);
                        // SAFETY: row i + mi < m, column col < n: inside `out`, and only
                        // this task writes the columns of group g.
                        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
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
    let rec = p.record_bytes();
    let halves = codes.halves();
    for (b, record) in p.group(g).chunks_exact(rec).enumerate() {
        let (scales, q) = record.split_at(p.scale_bytes());
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
                    let sum = if halves == 2 { a.sums[h] } else { a.sums[2] };
                    *acc = match p.zero {
                        None => f16_at(scales, 32 * (halves + h) + 2 * r).mul_add(sum, *acc),
                        Some(z) => f16_at(scales, 32 * h + 2 * r).mul_add(-z * sum, *acc),
                    };
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
    ///
    /// # Safety
    /// AVX-512 is enabled in the caller; `q` points at a record's codes: 256 bytes for
    /// `Codes::Nibble`, 512 otherwise.
    #[inline(always)]
    unsafe fn load_codes(q: *const u8, codes: Codes) -> [__m512i; 8] {
        // SAFETY: the loads stay inside the record's codes (the contract above).
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
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
    ///
    /// # Safety
    /// AVX-512 is enabled in the caller and `i < 8`.
    #[inline(always)]
    unsafe fn quad(a: &ActBlock, i: usize) -> __m512i {
        // SAFETY: bytes 4i..4i+4 of the 32 codes.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        let v = unsafe { a.q.as_ptr().add(4 * i).cast::<i32>().read_unaligned() };
        // SAFETY: callers run with AVX-512 enabled.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        unsafe { _mm512_set1_epi32(v) }
    }

    /// Accumulates row group `g` against `rows` activation rows into `acc`.
    ///
    /// # Safety
    /// The CPU has AVX512F/BW/VL, AVX512_VNNI, F16C and FMA; `g` is a row group of `p`,
    /// `rows <= TILE_M`, and `acts` holds `rows` rows of `p.blocks()` blocks each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")]
    pub(super) unsafe fn group(
        p: &Packed,
        g: usize,
        acts: &[ActBlock],
        rows: usize,
        out: &mut [[f32; ROWS]; TILE_M],
    ) {
        let (codes, blocks) = (p.codes, p.blocks());
        let (rec, halves) = (p.record_bytes(), codes.halves());
        let data = p.group(g);
        let mut acc = [_mm512_setzero_ps(); TILE_M];
        // Offsets: stored (`m · s`), or `d · (-z s)` for a symmetric format.
        let (offsets, neg_zero) = match p.zero {
            None => (halves, 1.0),
            Some(z) => (0, -z),
        };
        for b in 0..blocks {
            // SAFETY: record b of the group lies inside `data` (`Packed::group`).
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
            unsafe {
                let record = data.as_ptr().add(b * rec);
                let w = load_codes(record.add(p.scale_bytes()), codes);
                let scale =
                    |h: usize| _mm512_cvtph_ps(_mm256_loadu_si256(record.add(32 * h).cast()));
                for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
                    let a = &acts[mi * blocks + b];
                    if halves == 1 {
                        // Two chains of dot products (each waits on the previous one).
                        let mut s = [_mm512_setzero_si512(); 2];
                        for (i, w) in w.iter().enumerate() {
                            s[i % 2] = _mm512_dpbusd_epi32(s[i % 2], *w, quad(a, i));
                        }
                        let s = _mm512_add_epi32(s[0], s[1]);
                        let ds = _mm512_mul_ps(scale(0), _mm512_set1_ps(a.scale));
                        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds, *acc);
                        let sum = _mm512_set1_ps(neg_zero * a.sums[2]);
                        *acc = _mm512_fmadd_ps(scale(offsets), sum, *acc);
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
                            let sum = _mm512_set1_ps(neg_zero * a.sums[h]);
                            *acc = _mm512_fmadd_ps(scale(offsets + h), sum, *acc);
                        }
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc).take(rows) {
            // SAFETY: `o` is 16 f32.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActBlock, Codes, Packed, ROWS, TILE_M};

    /// Accumulates row group `g` against `rows` activation rows into `out`, 8 rows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `g` is a row group of `p`, `rows <= TILE_M`, and
    /// `acts` holds `rows` rows of `p.blocks()` blocks each.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group(
        p: &Packed,
        g: usize,
        acts: &[ActBlock],
        rows: usize,
        out: &mut [[f32; ROWS]; TILE_M],
    ) {
        let (codes, blocks, wide) = (p.codes, p.blocks(), p.wide);
        let (rec, halves) = (p.record_bytes(), codes.halves());
        // Offsets: stored, or `d · (-z Σa)`; 8-bit codes taken signed add `128 d Σa` back.
        let (offsets, neg_zero) = match p.zero {
            None => (halves, 1.0),
            Some(z) => (0, -z),
        };
        let back = if wide { 128.0 } else { 0.0 };
        let data = p.group(g);
        let (ones, low) = (_mm256_set1_epi16(1), _mm256_set1_epi8(0x0F));
        let mut acc = [[_mm256_setzero_ps(); 2]; TILE_M];
        for b in 0..blocks {
            // SAFETY: record b of the group lies inside `data` (`Packed::group`).
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
            unsafe {
                let record = data.as_ptr().add(b * rec);
                let q = record.add(p.scale_bytes());
                for half in 0..2 {
                    // Codes of rows 8·half..8·half+8: columns 4i..4i+4 in vector i.
                    let w: [__m256i; 8] = std::array::from_fn(|i| {
                        let at = |v: usize| _mm256_loadu_si256(q.add(64 * v + 32 * half).cast());
                        match codes {
                            Codes::Nibble if i < 4 => _mm256_and_si256(at(i), low),
                            Codes::Nibble => {
                                _mm256_and_si256(_mm256_srli_epi16::<4>(at(i - 4)), low)
                            }
                            _ if wide => _mm256_xor_si256(at(i), _mm256_set1_epi8(-128)),
                            _ => at(i),
                        }
                    });
                    let scale = |h: usize| {
                        _mm256_cvtph_ps(_mm_loadu_si128(record.add(32 * h + 16 * half).cast()))
                    };
                    for (mi, acc) in acc.iter_mut().enumerate().take(rows) {
                        let a = &acts[mi * blocks + b];
                        let mut s = [_mm256_setzero_si256(); 2];
                        for (i, w) in w.iter().enumerate() {
                            let quad =
                                i32::from_le_bytes(std::array::from_fn(|j| a.q[4 * i + j] as u8));
                            let av = _mm256_set1_epi32(quad);
                            let pairs = if wide {
                                // |w| · (a signed as w): no pair of products passes i16.
                                _mm256_maddubs_epi16(_mm256_abs_epi8(*w), _mm256_sign_epi8(av, *w))
                            } else {
                                _mm256_maddubs_epi16(*w, av)
                            };
                            let h = if halves == 2 { i / 4 } else { 0 };
                            s[h] = _mm256_add_epi32(s[h], _mm256_madd_epi16(pairs, ones));
                        }
                        let acc = &mut acc[half];
                        for (h, s) in s.iter().enumerate().take(halves) {
                            let ds = _mm256_mul_ps(scale(h), _mm256_set1_ps(a.scale));
                            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(*s), ds, *acc);
                        }
                        for h in 0..halves {
                            let sum = if halves == 2 { a.sums[h] } else { a.sums[2] };
                            if p.zero.is_none() {
                                let m = scale(offsets + h);
                                *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(sum), *acc);
                                if wide {
                                    let b = _mm256_set1_ps(back * sum);
                                    *acc = _mm256_fmadd_ps(scale(h), b, *acc);
                                }
                            } else if neg_zero + back != 0.0 {
                                let c = _mm256_set1_ps((neg_zero + back) * sum);
                                *acc = _mm256_fmadd_ps(scale(h), c, *acc);
                            }
                        }
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc).take(rows) {
            // SAFETY: `o` is 16 f32.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), a[1]);
            }
        }
    }
}
