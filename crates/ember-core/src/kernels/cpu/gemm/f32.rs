//! f32 products through the `gemm` crate (AVX-512 microkernels with burn-flex's `x86-v4`
//! feature), called directly on storage: into a fresh buffer (burn-flex's matmul zero-fills
//! and then re-copies its output for alignment), or added into an existing one. On
//! WebAssembly with SIMD128, Ember's own GEMM (`f32_simd128`) instead.

use std::mem::MaybeUninit;

use super::Mat;

/// Products of at least this many multiply-adds split one matrix over the threads (smaller
/// ones run one matrix per thread across a batch).
const PARALLEL_MACS: usize = 192 * 192 * 192;

/// Whether a product of these dims is split over the threads (else it runs on the caller's).
pub(crate) fn splits([m, k, n]: [usize; 3]) -> bool {
    m * n * k >= PARALLEL_MACS
}

/// `dst (m, n) = a (m, k) @ b (k, n)`, `dst` row-major; split over the threads when `split`.
pub(crate) fn product(
    dst: &mut [MaybeUninit<f32>],
    a: &Mat<f32>,
    b: &Mat<f32>,
    dims: [usize; 3],
    split: bool,
) {
    check(dst.len(), a, b, dims);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if crate::kernels::cpu::isa::simd128_gemm() {
        // SAFETY: `add` is false: `dst` is only written.
        // Exercised by tests/kernels_products.rs under Node (scripts/test_wasm.sh).
        return unsafe { super::f32_simd128::gemm(dst, a, b, dims, false) };
    }
    call(dst.as_mut_ptr().cast(), a, b, dims, false, split);
}

/// `dst (m, n) += a (m, k) @ b (k, n)`, `dst` row-major; split over the threads when `split`.
pub(crate) fn product_add(
    dst: &mut [f32],
    a: &Mat<f32>,
    b: &Mat<f32>,
    dims: [usize; 3],
    split: bool,
) {
    check(dst.len(), a, b, dims);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if crate::kernels::cpu::isa::simd128_gemm() {
        // SAFETY: f32 and MaybeUninit<f32> have one layout, and the GEMM writes only
        // initialized values; `add`: every element of `dst` is initialized (a `&mut [f32]`).
        // Exercised by tests/kernels_products.rs under Node (scripts/test_wasm.sh).
        return unsafe {
            let dst = &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]);
            super::f32_simd128::gemm(dst, a, b, dims, true)
        };
    }
    call(dst.as_mut_ptr(), a, b, dims, true, split);
}

/// Panics unless `dst` is `(m, n)` and every element of `a (m, k)` and `b (k, n)` reachable
/// from their offsets at their strides lies inside their slices.
fn check(len: usize, a: &Mat<f32>, b: &Mat<f32>, [m, k, n]: [usize; 3]) {
    let last = |x: &Mat<f32>, rows: usize, cols: usize| {
        x.off + (rows.max(1) - 1) * x.rs + (cols.max(1) - 1) * x.cs
    };
    assert!(
        len == m * n
            && (m * k == 0 || last(a, m, k) < a.s.len())
            && (k * n == 0 || last(b, k, n) < b.s.len()),
        "gemm::f32: operands outside their storage"
    );
}

/// The `gemm` crate's product into `dst` (checked by `check`).
fn call(dst: *mut f32, a: &Mat<f32>, b: &Mat<f32>, [m, k, n]: [usize; 3], add: bool, split: bool) {
    let par = if split {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `check` (by both callers) bounds every element of a `(m, k)` and b `(k, n)` reachable
    // from their offsets at their (non-negative) strides inside their slices, and `dst` holds
    // the `(m, n)` result row-major; gemm reads `dst` only when `add` (then it is initialized),
    // else only writes it.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs (products and their gradients).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            add,
            a.s.as_ptr().add(a.off),
            a.cs as isize,
            a.rs as isize,
            b.s.as_ptr().add(b.off),
            b.cs as isize,
            b.rs as isize,
            if add { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
