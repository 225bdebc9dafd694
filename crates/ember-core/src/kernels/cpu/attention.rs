//! Tiled attention with an online softmax (FlashAttention's schedule, on the CPU): forward and
//! backward in memory linear in the sequence length. No `(T, T)` probabilities are stored; the
//! forward keeps each query's log-sum-exp and the backward recomputes the probabilities tile by
//! tile.
//!
//! Inputs are `(B, H, T, D)` views with contiguous rows (the heads of a fused QKV projection
//! need no copy); keys and values may have fewer heads (grouped-query attention). Outputs are
//! written as `(B, T, H, D)` storage and returned as `(B, H, T, D)` views, so merging the heads
//! back is free.

use rayon::prelude::*;

use super::gemm::tiles::{BK, pack_transposed, tile_dots, tile_weighted, transpose_tile};
use super::simd::{exp, simd_kernel};
use super::storage::{Rows4, from_vec, from_vec_strided};
use crate::kernels::prim::Prim;

/// Query rows per tile.
const BQ: usize = 64;

/// The sizes of one attention problem.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    hkv: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

impl Dims {
    fn of(q: &Rows4, k: &Rows4, v: &Rows4) -> Option<Dims> {
        let ([b, h, tq, d], [bk, hkv, tk, dk], [bv, hv, tv, dv]) = (q.dims, k.dims, v.dims);
        let ok = b == bk && b == bv && hkv == hv && tk == tv && d == dk && hkv > 0;
        (ok && h.is_multiple_of(hkv)).then_some(Dims {
            b,
            h,
            hkv,
            tq,
            tk,
            d,
            dv,
        })
    }

    /// The key/value head that query head `h` reads.
    fn kv_head(&self, h: usize) -> usize {
        h / (self.h / self.hkv)
    }

    /// Keys query `t` sees: all, or `0..=t` when causal (top-left aligned, as PyTorch).
    fn keys_seen(&self, t: usize, causal: bool) -> usize {
        if causal {
            (t + 1).min(self.tk)
        } else {
            self.tk
        }
    }
}

simd_kernel! {
    /// The online-softmax step of one score tile: scores of rows `t0..` against keys `j0..`
    /// (masked past `nk` and, when causal, past each row's own position) become
    /// probabilities relative to the updated running max `m`; `l` and the accumulated output
    /// rows `acc` (length `dv`) are rescaled to it.
    #[allow(clippy::too_many_arguments)]
    fn online_softmax(
        s: &mut [f32],
        m: &mut [f32],
        l: &mut [f32],
        acc: &mut [f32],
        dv: usize,
        t0: usize,
        j0: usize,
        nk: usize,
        causal: bool,
    ) {
        for r in 0..m.len() {
            let seen = if causal { (t0 + r + 1).saturating_sub(j0).min(nk) } else { nk };
            let row = &mut s[r * BK..(r + 1) * BK];
            row[seen..].fill(f32::NEG_INFINITY);
            // Lane-wise max and sum over the whole tile row (fixed sizes vectorize).
            let mut lanes = [m[r]; 16];
            for c in row.chunks_exact(16) {
                for (l, &x) in lanes.iter_mut().zip(c) {
                    *l = if x > *l { x } else { *l };
                }
            }
            let max = lanes.iter().fold(m[r], |a, &b| if b > a { b } else { a });
            let alpha = exp(m[r] - max);
            let mut sums = [0f32; 16];
            for c in row.chunks_exact_mut(16) {
                for (sum, x) in sums.iter_mut().zip(c) {
                    *x = exp(*x - max); // 0 where masked
                    *sum += *x;
                }
            }
            l[r] = l[r] * alpha + sums.iter().sum::<f32>();
            m[r] = max;
            for a in &mut acc[r * dv..(r + 1) * dv] {
                *a *= alpha;
            }
        }
    }
}

/// Output rows `t0..t0 + rows` of query head `(b, h)`: `(acc (rows × dv), log-sum-exp)`.
fn forward_tile(
    [q, k, v]: [&Rows4; 3],
    dims: Dims,
    (b, h, t0, rows): (usize, usize, usize, usize),
    causal: bool,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let kvh = dims.kv_head(h);
    let q_rows: Vec<&[f32]> = (t0..t0 + rows).map(|t| q.row(b, h, t)).collect();
    let (mut m, mut l) = (vec![f32::NEG_INFINITY; rows], vec![0f32; rows]);
    let mut acc = vec![0f32; rows * dims.dv];
    let (mut kt, mut s) = (vec![0f32; dims.d * BK], vec![0f32; rows * BK]);
    let keys = dims.keys_seen(t0 + rows - 1, causal);
    for j0 in (0..keys).step_by(BK) {
        let nk = BK.min(keys - j0);
        pack_transposed(&mut kt, k, b, kvh, j0, nk);
        tile_dots(&mut s, &q_rows, &kt, dims.d, scale);
        online_softmax(
            &mut s, &mut m, &mut l, &mut acc, dims.dv, t0, j0, nk, causal,
        );
        let v_rows: Vec<&[f32]> = (j0..j0 + nk).map(|j| v.row(b, kvh, j)).collect();
        tile_weighted(&mut acc, dims.dv, &s, BK, &v_rows);
    }
    for (r, row) in acc.chunks_exact_mut(dims.dv).enumerate() {
        let inv = 1.0 / l[r];
        row.iter_mut().for_each(|x| *x *= inv);
        l[r] = m[r] + l[r].ln();
    }
    (acc, l)
}

/// `softmax(q kᵀ · scale) v`, causal (top-left) or not: `(y, lse)` with `y` a `(B, H, Tq, Dv)`
/// view over `(B, Tq, H, Dv)` storage and `lse` `(B, Tq, H)`. `None` when it does not apply.
pub(crate) fn attention(
    q: &Prim,
    k: &Prim,
    v: &Prim,
    causal: bool,
    scale: f64,
) -> Option<(Prim, Prim)> {
    let (qr, kr, vr) = (Rows4::of(q)?, Rows4::of(k)?, Rows4::of(v)?);
    let dims = Dims::of(&qr, &kr, &vr)?;
    let Dims { b, h, tq, dv, .. } = dims;
    let (mut y, mut lse) = (vec![0f32; b * tq * h * dv], vec![0f32; b * tq * h]);
    // One task per (batch, query tile), all heads: its output rows are contiguous.
    y.par_chunks_mut(tq * h * dv)
        .zip(lse.par_chunks_mut(tq * h))
        .enumerate()
        .flat_map(|(bi, (yb, lb))| {
            yb.par_chunks_mut(BQ * h * dv)
                .zip(lb.par_chunks_mut(BQ * h))
                .enumerate()
                .map(move |(ti, (y, l))| (bi, ti * BQ, y, l))
        })
        .for_each(|(bi, t0, y, lse)| {
            let rows = BQ.min(tq - t0);
            for hi in 0..h {
                let (acc, l) = forward_tile(
                    [&qr, &kr, &vr],
                    dims,
                    (bi, hi, t0, rows),
                    causal,
                    scale as f32,
                );
                for r in 0..rows {
                    y[(r * h + hi) * dv..(r * h + hi + 1) * dv]
                        .copy_from_slice(&acc[r * dv..(r + 1) * dv]);
                    lse[r * h + hi] = l[r];
                }
            }
        });
    let strides = vec![(tq * h * dv) as isize, dv as isize, (h * dv) as isize, 1];
    let y = from_vec_strided(y, vec![b, h, tq, dv], strides);
    Some((y, from_vec(lse, vec![b, tq, h])))
}

simd_kernel! {
    /// For a tile of scores `s` and output-gradient products `dp` (rows `t0..`, keys `j0..`):
    /// `s` becomes the probabilities `exp(s - lse)` and `dp` the score gradient
    /// `scale · p · (dp - delta)`, both zero where masked.
    #[allow(clippy::too_many_arguments)]
    fn probs_and_grads(
        s: &mut [f32],
        dp: &mut [f32],
        lse: &[f32],
        delta: &[f32],
        t0: usize,
        j0: usize,
        nk: usize,
        causal: bool,
        scale: f32,
    ) {
        for r in 0..lse.len() {
            let seen = if causal { (t0 + r + 1).saturating_sub(j0).min(nk) } else { nk };
            let (p, g) = (&mut s[r * BK..(r + 1) * BK], &mut dp[r * BK..(r + 1) * BK]);
            for c in 0..seen {
                p[c] = exp(p[c] - lse[r]);
                g[c] = scale * p[c] * (g[c] - delta[r]);
            }
            p[seen..].fill(0.0);
            g[seen..].fill(0.0);
        }
    }
}

/// Gradients of key/value head `(b, kvh)` and of its query heads: `(dq (G × Tq × D),
/// dk (Tk × D), dv (Tk × Dv))`, `G` the query heads per key/value head.
fn backward_head(
    [q, k, v, o, g]: [&Rows4; 5],
    lse: &[f32],
    dims: Dims,
    (b, kvh): (usize, usize),
    causal: bool,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims {
        h, tq, tk, d, dv, ..
    } = dims;
    let group = h / dims.hkv;
    let mut dq = vec![0f32; group * tq * d];
    let (mut dk, mut dvs) = (vec![0f32; tk * d], vec![0f32; tk * dv]);
    let (mut kt, mut vt) = (vec![0f32; d * BK], vec![0f32; dv * BK]);
    let (mut s, mut dp, mut tr) = (
        vec![0f32; BQ * BK],
        vec![0f32; BQ * BK],
        vec![0f32; BK * BQ],
    );
    for (gi, dq) in dq.chunks_exact_mut(tq * d).enumerate() {
        let hi = kvh * group + gi;
        let head_lse: Vec<f32> = (0..tq).map(|t| lse[(b * tq + t) * h + hi]).collect();
        // delta_t = Σ_e dO[t, e] · O[t, e]
        let delta: Vec<f32> = (0..tq)
            .map(|t| {
                g.row(b, hi, t)
                    .iter()
                    .zip(o.row(b, hi, t))
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        for j0 in (0..tk).step_by(BK) {
            let nk = BK.min(tk - j0);
            pack_transposed(&mut kt, k, b, kvh, j0, nk);
            pack_transposed(&mut vt, v, b, kvh, j0, nk);
            let k_rows: Vec<&[f32]> = (j0..j0 + nk).map(|j| k.row(b, kvh, j)).collect();
            // When causal, only queries at or after the tile's first key see it.
            let first = if causal { j0.min(tq) } else { 0 };
            for t0 in (first..tq).step_by(BQ) {
                let rows = BQ.min(tq - t0);
                let q_rows: Vec<&[f32]> = (t0..t0 + rows).map(|t| q.row(b, hi, t)).collect();
                let g_rows: Vec<&[f32]> = (t0..t0 + rows).map(|t| g.row(b, hi, t)).collect();
                let (st, dpt) = (&mut s[..rows * BK], &mut dp[..rows * BK]);
                tile_dots(st, &q_rows, &kt, d, scale);
                tile_dots(dpt, &g_rows, &vt, dv, 1.0);
                let (l, dl) = (&head_lse[t0..t0 + rows], &delta[t0..t0 + rows]);
                probs_and_grads(st, dpt, l, dl, t0, j0, nk, causal, scale);
                let tt = &mut tr[..nk * rows];
                transpose_tile(tt, st, rows, nk); // pᵀ
                tile_weighted(&mut dvs[j0 * dv..(j0 + nk) * dv], dv, tt, rows, &g_rows);
                tile_weighted(&mut dq[t0 * d..(t0 + rows) * d], d, dpt, BK, &k_rows);
                transpose_tile(tt, dpt, rows, nk); // dsᵀ
                tile_weighted(&mut dk[j0 * d..(j0 + nk) * d], d, tt, rows, &q_rows);
            }
        }
    }
    (dq, dk, dvs)
}

/// Gradients `(dq, dk, dv)` of [`attention`] from its inputs, output `o`, log-sum-exp `lse`
/// and the output gradient `g`; each a `(B, H, T, D)` view over `(B, T, H, D)` storage.
/// `None` when it does not apply.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(
    q: &Prim,
    k: &Prim,
    v: &Prim,
    o: &Prim,
    lse: &Prim,
    g: &Prim,
    causal: bool,
    scale: f64,
) -> Option<(Prim, Prim, Prim)> {
    let (qr, kr, vr) = (Rows4::of(q)?, Rows4::of(k)?, Rows4::of(v)?);
    let (or, gr) = (Rows4::of(o)?, Rows4::of(g)?);
    let dims = Dims::of(&qr, &kr, &vr)?;
    let Dims {
        b,
        h,
        hkv,
        tq,
        tk,
        d,
        dv,
    } = dims;
    let lse = super::storage::values(lse)?;
    if or.dims != [b, h, tq, dv] || gr.dims != or.dims || lse.len() != b * tq * h {
        return None;
    }
    let parts: Vec<_> = (0..b * hkv)
        .into_par_iter()
        .map(|i| {
            let rows = [&qr, &kr, &vr, &or, &gr];
            backward_head(rows, lse, dims, (i / hkv, i % hkv), causal, scale as f32)
        })
        .collect();
    let group = h / hkv;
    let (mut gq, mut gk) = (vec![0f32; b * tq * h * d], vec![0f32; b * tk * hkv * d]);
    let mut gv = vec![0f32; b * tk * hkv * dv];
    for (i, (dq, dk, dvs)) in parts.iter().enumerate() {
        let (bi, kvh) = (i / hkv, i % hkv);
        for (gi, head) in dq.chunks_exact(tq * d).enumerate() {
            let hi = kvh * group + gi;
            for (t, row) in head.chunks_exact(d).enumerate() {
                let at = ((bi * tq + t) * h + hi) * d;
                gq[at..at + d].copy_from_slice(row);
            }
        }
        for (j, (kr, vr)) in dk.chunks_exact(d).zip(dvs.chunks_exact(dv)).enumerate() {
            let row = (bi * tk + j) * hkv + kvh;
            gk[row * d..(row + 1) * d].copy_from_slice(kr);
            gv[row * dv..(row + 1) * dv].copy_from_slice(vr);
        }
    }
    let view = |data: Vec<f32>, heads: usize, t: usize, w: usize| {
        let strides = vec![
            (t * heads * w) as isize,
            w as isize,
            (heads * w) as isize,
            1,
        ];
        from_vec_strided(data, vec![b, heads, t, w], strides)
    };
    Some((
        view(gq, h, tq, d),
        view(gk, hkv, tk, d),
        view(gv, hkv, tk, dv),
    ))
}
