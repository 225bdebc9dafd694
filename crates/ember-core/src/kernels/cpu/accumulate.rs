//! In-place gradient accumulation for f32: `acc += x` into the running sum's own buffer when
//! nothing else holds it (bf16's is `bf16::add_into`, summed in f32 and rounded once).

use rayon::prelude::*;

use super::par::CHUNK;
use super::simd::simd_kernel;
use super::storage::{take_flex, unique_values, values, wrap};
use crate::kernels::prim::Prim;

simd_kernel! {
    fn add_assign_chunk(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
}

/// `acc + x` written into `acc`'s storage when nothing else holds it (gradient accumulation);
/// `acc` comes back in `Err` when the kernel does not apply (shared, another dtype or device,
/// a view, different shapes).
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn add_into(acc: Prim, x: &Prim) -> Result<Prim, Prim> {
    if acc.dims() != x.dims() || values(&acc).is_none() {
        return Err(acc);
    }
    let Some(xs) = values(x) else { return Err(acc) };
    let mut t = take_flex(acc)?;
    let Some(vals) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    if xs.len() <= CHUNK {
        add_assign_chunk(vals, xs);
    } else {
        vals.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(a, x)| add_assign_chunk(a, x));
    }
    Ok(wrap(t))
}
