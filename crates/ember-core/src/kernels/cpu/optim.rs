//! The Adam(W) update in one pass, moments written in place.

use rayon::prelude::*;

use super::par::CHUNK;
use super::simd::simd_kernel;
use super::storage::{from_vec, owned, unique_values, values, wrap};
use crate::AdamStep;
use crate::kernels::prim::Prim;

/// [`AdamStep`] as the f32 factors of the update.
struct AdamConsts {
    b1: f32,
    b2: f32,
    eps: f32,
    /// L2 coefficient added to the gradient (Adam), 0 for AdamW.
    l2: f32,
    /// `1 - lr·wd` for AdamW, 1 for Adam.
    shrink: f32,
    /// `lr / (1 - β1^t)`.
    step: f32,
    /// `1 / √(1 - β2^t)`.
    inv_sqrt_bc2: f32,
}

simd_kernel! {
    fn adamw_chunk(o: &mut [f32], w: &[f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts) {
        for i in 0..o.len().min(w.len()).min(g.len()).min(m.len()).min(v.len()) {
            let gi = g[i] + k.l2 * w[i];
            let mi = m[i] + (gi - m[i]) * (1.0 - k.b1); // lerp, as torch
            let vi = v[i] * k.b2 + gi * gi * (1.0 - k.b2);
            m[i] = mi;
            v[i] = vi;
            let denom = vi.sqrt() * k.inv_sqrt_bc2 + k.eps;
            o[i] = w[i] * k.shrink - k.step * (mi / denom);
        }
    }
}

/// One Adam(W) update as PyTorch's: the new `(w, m, v)`, with `m` and `v` updated in place
/// when nothing else holds them. `m` and `v` come back in `Err` when the kernel does not apply
/// (another device or dtype, a layout it does not take, different shapes).
#[allow(clippy::result_large_err)] // the state goes back by value, as it came
pub(crate) fn adamw(
    w: &Prim,
    g: &Prim,
    m: Prim,
    v: Prim,
    h: &AdamStep,
) -> Result<(Prim, Prim, Prim), (Prim, Prim)> {
    let dims = w.dims();
    let (Some(ws), Some(gs)) = (values(w), values(g)) else {
        return Err((m, v));
    };
    if g.dims() != dims || m.dims() != dims || v.dims() != dims {
        return Err((m, v));
    }
    let mut mt = match owned(m) {
        Ok(t) => t,
        Err(m) => return Err((m, v)),
    };
    let mut vt = match owned(v) {
        Ok(t) => t,
        Err(v) => return Err((wrap(mt), v)),
    };
    if unique_values(&mut mt).is_none() || unique_values(&mut vt).is_none() {
        return Err((wrap(mt), wrap(vt)));
    }
    let k = AdamConsts {
        b1: h.betas.0 as f32,
        b2: h.betas.1 as f32,
        eps: h.eps as f32,
        l2: if h.decoupled {
            0.0
        } else {
            h.weight_decay as f32
        },
        shrink: if h.decoupled {
            (1.0 - h.lr * h.weight_decay) as f32
        } else {
            1.0
        },
        step: (h.lr / h.bias_correction1) as f32,
        inv_sqrt_bc2: (1.0 / h.bias_correction2.sqrt()) as f32,
    };
    let mut out = vec![0f32; ws.len()];
    {
        let ms = unique_values(&mut mt).unwrap_or_default(); // checked above
        let vs = unique_values(&mut vt).unwrap_or_default();
        out.par_chunks_mut(CHUNK)
            .zip(ws.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
            .zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK)))
            .for_each(|((o, (w, g)), (m, v))| adamw_chunk(o, w, g, m, v, &k));
    }
    Ok((from_vec(out, dims), wrap(mt), wrap(vt)))
}
