//! Matrix products: forward (batched, equal-rank primitives) and `torch.matmul`'s backward.
//!
//! f32 on the CPU: the `gemm` crate called directly (Ember's SIMD128 GEMM on WebAssembly), or a few-row product that streams the
//! weight once (`cpu::matmul`). bf16 on the CPU: Ember's GEMM on AMX tiles, its AVX512_BF16
//! GEMM where `vdpbf16ps` beats f32 FMAs, or the same streaming (`cpu::matmul::matmul_bf16`);
//! else the f32 GEMM on widened operands. Elsewhere: burn's primitive.

use super::cpu::{bf16, matmul as cpu};
use super::prim::{self, Prim};
use super::reduce::sum_to;
use super::trace::{Impl, note};
use crate::{DType, Result, Tensor};

/// `a (.., m, k) @ b (.., k, n)` for float primitives of equal rank and batch dims.
pub(crate) fn matmul(a: Prim, b: Prim) -> Prim {
    if let Some((y, used)) = cpu::matmul(&a, &b) {
        note("matmul", used);
        return y;
    }
    if let Some((y, used)) = cpu::matmul_bf16(&a, &b) {
        note("matmul", used);
        return y;
    }
    if bf16::flex_bf16(&a).is_some() && bf16::flex_bf16(&b).is_some() {
        // No bf16 GEMM that beats f32 on this CPU (no AMX tiles; no AVX512_BF16, or
        // `vdpbf16ps` at half the f32 rate as on Intel's cores): the f32 GEMM on widened
        // operands (measured within 5% of an f32 product at 2048²: the conversions).
        let wide = |p: Prim| bf16::widen(&p).unwrap_or_else(|| prim::cast(p, DType::F32));
        if let Some(y) =
            cpu::matmul(&wide(a.clone()), &wide(b.clone())).and_then(|(y, _)| bf16::narrow(&y))
        {
            note("matmul", Impl::CpuBf16ViaF32);
            return y;
        }
    }
    note("matmul", Impl::Composed);
    prim::matmul(a, b)
}

/// `acc + a @ b` for 2-D tensors, `acc` consumed: on the CPU (f32) the product is added into
/// `acc`'s buffer by the GEMM when nothing else holds it (no `(m, n)` temporary), elsewhere a
/// product and a sum.
pub(crate) fn matmul_accumulate(acc: Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = acc.shape();
    match cpu::matmul_add_into(acc.into_prim(), &a.prim(), &b.prim()) {
        Ok(p) => {
            note("matmul_accumulate", cpu::gemm_impl());
            Ok(a.wrap(p, shape))
        }
        Err(p) => {
            note("matmul_accumulate", Impl::Composed);
            a.wrap(p, shape).add(&a.matmul(b)?)
        }
    }
}

/// The gradients of `a.matmul(b)` (PyTorch's rules: 1-D operands, broadcast batch dims) given
/// the output gradient `g`.
pub(crate) fn matmul_backward(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
    let a2 = if a.rank() == 1 {
        a.unsqueeze(0)?
    } else {
        a.clone()
    };
    let b2 = if b.rank() == 1 {
        b.unsqueeze(-1)?
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.rank(), b2.rank());
    let batch_rank = (ra - 2).max(rb - 2);
    let lead = |t: &Tensor| -> Vec<usize> {
        let mut s = vec![1; batch_rank + 2 - t.rank()];
        s.extend_from_slice(&t.dims()[..t.rank() - 2]);
        s
    };
    let (la, lb) = (lead(&a2), lead(&b2));
    let batch: Vec<usize> = la.iter().zip(&lb).map(|(&x, &y)| x.max(y)).collect();
    let mut gshape = batch;
    gshape.push(a2.dims()[ra - 2]);
    gshape.push(b2.dims()[rb - 1]);
    let g2 = g.reshape_to(&gshape)?; // (batch.., m, n)
    // Only the gradients that flow somewhere: a frozen weight (LoRA's base) costs no product.
    let ga = match a.is_tracked() {
        true => {
            let ga = g2.matmul(&b2.transpose(-1, -2)?)?; // (batch.., m, k)
            Some(sum_to(&ga, a2.dims())?.reshape_to(a.dims())?)
        }
        false => None,
    };
    if !b.is_tracked() {
        return Ok([ga, None]);
    }
    let gb = if rb == 2 && ra > 2 {
        // One matrix for every batch: a single (k, batch·m) @ (batch·m, n) product instead of
        // per-batch products summed afterwards.
        let (k, n) = (a2.dims()[ra - 1], g2.dims()[g2.rank() - 1]);
        let a_rows = a2.reshape(&[-1, k as isize])?; // (batch·m, k)
        let g_rows = g2.reshape(&[-1, n as isize])?; // (batch·m, n)
        if cpu_transposed(&b2) {
            // b is wᵀ (a tied output head): compute in w's layout, so that the transpose's
            // backward hands w a contiguous gradient that accumulates in place.
            g_rows.transpose(0, 1)?.matmul(&a_rows)?.transpose(0, 1)? // (k, n) view of (n, k)
        } else {
            a_rows.transpose(0, 1)?.matmul(&g_rows)? // (k, n)
        }
    } else {
        a2.transpose(-1, -2)?.matmul(&g2)? // (batch.., k, n)
    };
    Ok([ga, Some(sum_to(&gb, b2.dims())?.reshape_to(b.dims())?)])
}

/// True when `t` is an f32 or bf16 CPU matrix stored as the transpose of a row-major one.
fn cpu_transposed(t: &Tensor) -> bool {
    super::cpu::storage::is_transposed(&t.prim())
}
