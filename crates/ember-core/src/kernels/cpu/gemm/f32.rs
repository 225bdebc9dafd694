//! f32 products through the `gemm` crate (AVX-512 microkernels with burn-flex's `x86-v4`
//! feature), called directly on storage: into a fresh buffer (burn-flex's matmul zero-fills
//! and then re-copies its output for alignment), or added into an existing one.

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
    call(dst.as_mut_ptr().cast(), dst.len(), a, b, dims, false, split);
}

/// `dst (m, n) += a (m, k) @ b (k, n)`, `dst` row-major; split over the threads when `split`.
pub(crate) fn product_add(
    dst: &mut [f32],
    a: &Mat<f32>,
    b: &Mat<f32>,
    dims: [usize; 3],
    split: bool,
) {
    call(dst.as_mut_ptr(), dst.len(), a, b, dims, true, split);
}

fn call(
    dst: *mut f32,
    len: usize,
    a: &Mat<f32>,
    b: &Mat<f32>,
    [m, k, n]: [usize; 3],
    add: bool,
    split: bool,
) {
    let last = |x: &Mat<f32>, rows: usize, cols: usize| {
        x.off + (rows.max(1) - 1) * x.rs + (cols.max(1) - 1) * x.cs
    };
    assert!(
        len == m * n
            && (m * k == 0 || last(a, m, k) < a.s.len())
            && (k * n == 0 || last(b, k, n) < b.s.len()),
        "gemm::f32: operands outside their storage"
    );
    let par = if split {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above bounds every element of a `(m, k)` and b `(k, n)` reachable
    // from their offsets at their (non-negative) strides inside their slices, and `dst` holds
    // the `(m, n)` result row-major; gemm reads `dst` only when `add` (then it is initialized),
    // else only writes it.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels.rs (products and their gradients).
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
