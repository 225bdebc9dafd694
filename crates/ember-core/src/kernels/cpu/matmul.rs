//! Matrix products of CPU primitives, batched `a (.., m, k) @ b (.., k, n)` with equal batch
//! dims and any non-negative strides: the storage read in place and handed to `gemm`.
//!
//! f32: products of at most `FEW_ROWS` rows stream `b` once (`gemm::stream`; the GEMM would
//! pack `b` for so few rows and run matrix-vector products on one thread), the rest run the
//! `gemm` crate (`gemm::f32`). bf16: the same streaming for few rows, for the rest the GEMM on
//! AMX tiles or the AVX512_BF16 GEMM where `vdpbf16ps` beats f32 FMAs (`gemm::bf16::gemm`).
//! Each returns `None` where it does not apply.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::bf16::{bits, flex_bf16, from_bits, narrow_into};
use super::gemm::stream::{Lane, few_rows, few_rows_one};
use super::gemm::{FEW_ROWS, Mat, bf16 as gemm_bf16, f32 as gemm_f32};
use super::storage::{flex, from_vec, strides_within, take_flex, unique_values, values, wrap};
use crate::kernels::prim::Prim;
use crate::kernels::trace::Impl;

/// Two operands of a batched product read in place: matrix `i` of the batch of each.
struct Batch<'a, E> {
    a: (&'a [E], Vec<isize>, usize),
    b: (&'a [E], Vec<isize>, usize),
    batch_dims: Vec<usize>,
    /// `[m, k, n]`.
    dims: [usize; 3],
}

impl<'a, E: Copy> Batch<'a, E> {
    /// The operands' storage `sa`, `sb` (elements of `E`) of the flex tensors `ta`, `tb`, when
    /// their shapes multiply and every element lies inside the storage.
    fn of(
        ta: &FlexTensor,
        sa: &'a [E],
        tb: &FlexTensor,
        sb: &'a [E],
        ad: &[usize],
        bd: &[usize],
    ) -> Option<Self> {
        let r = ad.len();
        if r < 2 || bd.len() != r || ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 2] {
            return None;
        }
        let stra = strides_within(ta, sa.len())?;
        let strb = strides_within(tb, sb.len())?;
        Some(Batch {
            a: (sa, stra, ta.layout().start_offset()),
            b: (sb, strb, tb.layout().start_offset()),
            batch_dims: ad[..r - 2].to_vec(),
            dims: [ad[r - 2], ad[r - 1], bd[r - 1]],
        })
    }

    fn len(&self) -> usize {
        self.batch_dims.iter().product()
    }

    /// Matrix `i` of the batch of `a` and of `b`.
    fn mats(&self, i: usize) -> (Mat<'a, E>, Mat<'a, E>) {
        let r = self.batch_dims.len() + 2;
        let mat = |(s, strides, start): &(&'a [E], Vec<isize>, usize)| {
            let (mut rem, mut off) = (i, *start);
            for d in (0..self.batch_dims.len()).rev() {
                off += (rem % self.batch_dims[d]) * strides[d] as usize;
                rem /= self.batch_dims[d];
            }
            Mat {
                s,
                off,
                rs: strides[r - 2] as usize,
                cs: strides[r - 1] as usize,
            }
        };
        (mat(&self.a), mat(&self.b))
    }

    /// Whether `b` streams (a unit stride along one of its dims) for a few-row product.
    fn streams(&self) -> bool {
        let r = self.batch_dims.len() + 2;
        self.dims[0] <= FEW_ROWS && (self.b.1[r - 1] == 1 || self.b.1[r - 2] == 1)
    }

    /// The result's shape.
    fn out_dims(&self) -> Vec<usize> {
        let mut d = self.batch_dims.clone();
        d.extend([self.dims[0], self.dims[2]]);
        d
    }
}

/// The `(m, k)` matrix `a`, widened to a row-major f32 buffer.
fn widened_rows<E: Lane>(a: &Mat<E>, m: usize, k: usize) -> Vec<f32> {
    (0..m * k).map(|e| a.at(e / k, e % k).f32()).collect()
}

/// What runs f32 products of more than `FEW_ROWS` rows: Ember's SIMD128 GEMM on WebAssembly,
/// else the `gemm` crate (noted as Ember's f32 kernel).
pub(crate) fn gemm_impl() -> Impl {
    if super::isa::simd128_gemm() {
        Impl::CpuF32Simd128
    } else {
        Impl::CpuF32
    }
}

/// Batched f32 product (see the module docs) and the implementation that ran.
pub(crate) fn matmul(a: &Prim, b: &Prim) -> Option<(Prim, Impl)> {
    let (ta, tb) = (flex(a)?, flex(b)?);
    let p = Batch::of(
        ta,
        ta.storage::<f32>(),
        tb,
        tb.storage::<f32>(),
        &a.dims(),
        &b.dims(),
    )?;
    let ([m, k, n], batch) = (p.dims, p.len());
    let size = m * n;
    if p.streams() {
        let out = if batch == 1 {
            let (ma, mb) = p.mats(0);
            few_rows(&widened_rows(&ma, m, k), &mb, [m, k, n])?
        } else {
            // Decode-sized products in a batch (attention over a KV cache): one per task.
            let mut out = vec![0f32; batch * size];
            let one = |(i, y): (usize, &mut [f32])| {
                let (ma, mb) = p.mats(i);
                few_rows_one(y, &widened_rows(&ma, m, k), &mb, [k, n]);
            };
            if batch * size * k <= 1 << 20 {
                out.chunks_mut(size).enumerate().for_each(one); // small: no hand-off to the pool
            } else {
                out.par_chunks_mut(size).enumerate().for_each(one);
            }
            out
        };
        return Some((from_vec(out, p.out_dims()), Impl::CpuF32));
    }
    let mut out: Vec<f32> = Vec::with_capacity(batch * size);
    let spare = &mut out.spare_capacity_mut()[..batch * size];
    let split = gemm_f32::splits([m, k, n]);
    if split || batch == 1 {
        for (i, dst) in spare.chunks_mut(size).enumerate() {
            let (ma, mb) = p.mats(i);
            gemm_f32::product(dst, &ma, &mb, [m, k, n], split);
        }
    } else {
        spare.par_chunks_mut(size).enumerate().for_each(|(i, dst)| {
            let (ma, mb) = p.mats(i);
            gemm_f32::product(dst, &ma, &mb, [m, k, n], false);
        });
    }
    // SAFETY: every matrix of the batch was written in full above (`strides_within` refuses
    // empty dims, so each product wrote its `(m, n)` block).
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs and tests/kernels_bf16.rs (products).
    unsafe { out.set_len(batch * size) };
    Some((from_vec(out, p.out_dims()), gemm_impl()))
}

/// Batched bf16 product (see the module docs) and the implementation that ran: `None` when
/// the operands do not qualify or, for more than `FEW_ROWS` rows, no bf16 GEMM runs here
/// (no AMX tiles, and no AVX512_BF16 faster than the f32 GEMM: `gemm_bf16::runs`).
pub(crate) fn matmul_bf16(a: &Prim, b: &Prim) -> Option<(Prim, Impl)> {
    let (ta, tb) = (flex_bf16(a)?, flex_bf16(b)?);
    let p = Batch::of(ta, bits(ta), tb, bits(tb), &a.dims(), &b.dims())?;
    let ([m, k, n], batch) = (p.dims, p.len());
    let few = p.streams();
    if !few && !gemm_bf16::runs() {
        return None;
    }
    let mut used = Impl::CpuBf16;
    let mut out: Vec<u16> = Vec::with_capacity(batch * m * n);
    let spare = &mut out.spare_capacity_mut()[..batch * m * n];
    for (i, dst) in spare.chunks_mut(m * n).enumerate() {
        let (ma, mb) = p.mats(i);
        let done = if few {
            few_rows(&widened_rows(&ma, m, k), &mb, [m, k, n]).map(|y| narrow_into(dst, &y))
        } else {
            gemm_bf16::gemm(&ma, &mb, [m, k, n], dst).map(|ran| {
                if ran == gemm_bf16::Bf16Gemm::Amx {
                    used = Impl::CpuBf16Amx;
                }
            })
        };
        done?;
    }
    // SAFETY: each matrix of the batch was written in full: by `few_rows`' narrowing, or by
    // the GEMM's tiles, which cover every row and column.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/kernels_products.rs and tests/kernels_bf16.rs (products).
    unsafe { out.set_len(batch * m * n) };
    Some((from_bits(out, p.out_dims()), used))
}

/// `acc += a @ b` for 2-D f32 CPU primitives (`a (m, k)`, `b (k, n)` in any strides), written
/// into `acc`'s `(m, n)` buffer when nothing else holds it and it is contiguous; otherwise
/// `acc` comes back in `Err`.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn matmul_add_into(acc: Prim, a: &Prim, b: &Prim) -> Result<Prim, Prim> {
    let (Some(ta), Some(tb)) = (flex(a), flex(b)) else {
        return Err(acc);
    };
    let (ad, bd) = (a.dims(), b.dims());
    let p = match Batch::of(ta, ta.storage::<f32>(), tb, tb.storage::<f32>(), &ad, &bd) {
        Some(p)
            if ad.len() == 2 && acc.dims() == [p.dims[0], p.dims[2]] && values(&acc).is_some() =>
        {
            p
        }
        _ => return Err(acc),
    };
    let mut t = take_flex(acc)?;
    let Some(dst) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    let (ma, mb) = p.mats(0);
    gemm_f32::product_add(dst, &ma, &mb, p.dims, gemm_f32::splits(p.dims));
    Ok(wrap(t))
}
