//! Matrix products on the CPU, on storage slices (no primitives: `cpu::matmul`,
//! `cpu::qlinear` and `cpu::attention` read the tensors and call these).
//!
//! | file | what |
//! |---|---|
//! | `f32` | f32 products through the `gemm` crate (AVX-512 microkernels), batched, into fresh buffers or added into one |
//! | `f32_simd128` | the f32 GEMM on WebAssembly SIMD128: packed panels, a 4×8 microkernel |
//! | `amx_bf16` | the bf16 GEMM on AMX tiles (or their emulator): 32×32 blocks of 2×2 tiles, `k` whole |
//! | `amx_int8` | quantized products on AMX int8 tiles: the integer kernels' sums and epilogue, bit for bit |
//! | `bf16` | the packed AVX512_BF16 GEMM: 6×64 `vdpbf16ps` microkernel, f32 sums rounded once |
//! | `pack_bf16` | bf16 panels for it, each lane a pair along `k` |
//! | `int8` | quantized weights × 8-bit activations: AVX512-VNNI, AVX2 or portable integer dot products |
//! | `int8_simd128` | the same on WebAssembly SIMD128 (`i32x4.dot_i16x8_s`), the f32 epilogue's FMAs through f64 |
//! | `pack_int8` | GGML blocks repacked for it (16 rows per record), activations quantized to 8 bits |
//! | `stream` | products of at most 4 rows (decoding), streaming `b` once, generic over its element |
//! | `tiles` | the 64-wide tiles of attention's products (AVX-512 FMA kernels) |
//!
//! Which implementation runs is decided by `isa` and the callers; every one of them is
//! compared with the composed definition by the kernel tests.

pub(crate) mod amx_bf16;
pub(crate) mod amx_int8;
pub(crate) mod bf16;
pub(crate) mod f32;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod f32_simd128;
pub(crate) mod int8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod int8_simd128;
pub(crate) mod pack_bf16;
pub(crate) mod pack_int8;
pub(crate) mod stream;
pub(crate) mod tiles;

/// Products with at most this many rows stream `b` once instead of running a GEMM (decoding).
pub(crate) const FEW_ROWS: usize = 4;

/// A matrix read in place: element `(i, p)` at `s[off + i·rs + p·cs]`. Whoever makes one
/// checks that every element of its dims lies inside `s`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, E> {
    pub(crate) s: &'a [E],
    pub(crate) off: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<E: Copy> Mat<'_, E> {
    /// Element `(i, p)`.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize, p: usize) -> E {
        self.s[self.off + i * self.rs + p * self.cs]
    }

    /// Columns from `p0` on (a range along `k` for `a`), or with `along_rows` rows from `p0`
    /// on (along `k` for `b`), as a view of the same storage.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn skip_k(&self, p0: usize, along_rows: bool) -> Self {
        let step = if along_rows { self.rs } else { self.cs };
        Mat {
            off: self.off + p0 * step,
            ..*self
        }
    }
}
