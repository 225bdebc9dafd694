//! Rotary embeddings, multi-head attention with grouped-query heads and a KV cache, and the
//! pre-norm transformer block (Llama's names).

use std::sync::{Arc, RwLock};

use ember_core::fused::AppendBuffer;
use ember_core::{AttentionOpts, DType, Device, Error, Result, Tensor};

use crate::Module;
use crate::builder::VarBuilder;
use crate::layers::{Dropout, LayerNorm, Linear, Projection, RmsNorm};

/// Rotary position embeddings in Hugging Face's "rotate half" convention: the first and
/// second halves of each head are rotated as pairs.
///
/// The cos/sin tables are computed on first use for the positions used, and grow (doubling)
/// up to `max_pos` as longer sequences arrive, so a large `max_position_embeddings` costs
/// nothing until it is used. Clones share the tables.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    head_dim: usize,
    max_pos: usize,
    theta: f64,
    /// linear scaling: frequencies divided by this (`rope_type = "linear"`)
    factor: f64,
    dtype: DType,
    device: Device,
    tables: Arc<RwLock<Option<(Tensor, Tensor)>>>, // cos, sin: (rows, head_dim)
}

impl RotaryEmbedding {
    /// Rotary embeddings for positions `0..max_pos` with base `theta` (`rope_theta`);
    /// nothing is allocated until [`RotaryEmbedding::apply`] needs it.
    pub fn new(
        head_dim: usize,
        max_pos: usize,
        theta: f64,
        dtype: DType,
        device: Device,
    ) -> Result<RotaryEmbedding> {
        if !head_dim.is_multiple_of(2) || head_dim == 0 || max_pos == 0 {
            return Err(Error::data(
                "RotaryEmbedding",
                format!("head_dim {head_dim} must be even and max_pos {max_pos} positive"),
            ));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::data(
                "RotaryEmbedding",
                format!("rope_theta {theta} must be finite and positive"),
            ));
        }
        Ok(RotaryEmbedding {
            head_dim,
            max_pos,
            theta,
            factor: 1.0,
            dtype,
            device,
            tables: Arc::new(RwLock::new(None)),
        })
    }

    /// With linear position scaling (`rope_type = "linear"`): frequencies divided by
    /// `factor` (finite, at least 1).
    pub fn with_linear_scaling(mut self, factor: f64) -> Result<RotaryEmbedding> {
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(Error::data(
                "RotaryEmbedding",
                format!("linear rope scaling factor {factor} must be finite and at least 1"),
            ));
        }
        self.factor = factor;
        self.tables = Arc::new(RwLock::new(None));
        Ok(self)
    }

    /// The positions the tables may cover.
    pub fn max_positions(&self) -> usize {
        self.max_pos
    }

    /// cos and sin `(rows, head_dim)` for positions `0..rows`.
    fn compute(&self, rows: usize) -> Result<(Tensor, Tensor)> {
        let (d, half) = (self.head_dim, self.head_dim / 2);
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / self.theta.powf((2 * i) as f64 / d as f64)) as f32 / self.factor as f32)
            .collect();
        let what = || format!("rotary tables of {rows} positions × {d}");
        ember_core::memory::check_elements(
            "RotaryEmbedding",
            &[rows, 2, d],
            DType::F32,
            self.device,
            what,
        )?;
        let (mut cos, mut sin) = (Vec::with_capacity(rows * d), Vec::with_capacity(rows * d));
        for p in 0..rows {
            for _half in 0..2 {
                for &f in &inv {
                    // The angle in f32 as transformers computes it.
                    let angle = (p as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let shape = [rows, d];
        Ok((
            Tensor::from_vec(cos, &shape, self.device)?.to_dtype(self.dtype)?,
            Tensor::from_vec(sin, &shape, self.device)?.to_dtype(self.dtype)?,
        ))
    }

    /// cos and sin `(len, head_dim)` for positions `offset..offset + len`, growing the tables
    /// when they are too short.
    fn tables(&self, offset: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let end = offset.checked_add(len).filter(|&e| e <= self.max_pos);
        let Some(end) = end else {
            return Err(Error::shape(
                "RotaryEmbedding::apply",
                &[&[offset, len]],
                format!(
                    "positions {offset}..{} exceed the {} positions of the model",
                    offset.saturating_add(len),
                    self.max_pos
                ),
            ));
        };
        let narrow = |(c, s): &(Tensor, Tensor)| -> Result<(Tensor, Tensor)> {
            Ok((c.narrow(0, offset, len)?, s.narrow(0, offset, len)?))
        };
        if let Some(t) = &*self.tables.read().unwrap_or_else(|e| e.into_inner())
            && t.0.dims()[0] >= end
        {
            return narrow(t);
        }
        let mut guard = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let have = guard.as_ref().map_or(0, |t| t.0.dims()[0]);
        if have < end {
            let rows = end.max(have.saturating_mul(2)).max(256).min(self.max_pos);
            *guard = Some(self.compute(rows)?);
        }
        match &*guard {
            Some(t) => narrow(t),
            None => Err(Error::internal(
                "RotaryEmbedding",
                "tables missing after growth",
            )),
        }
    }

    /// Rotates `x` `(B, H, T, D)` for positions `offset..offset + T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (t, d) = (x.dims()[2], x.dims()[3]);
        if d != self.head_dim {
            return Err(Error::shape(
                "RotaryEmbedding::apply",
                &[x.dims()],
                format!("head dim {d}, the rotary tables are for {}", self.head_dim),
            ));
        }
        let (cos, sin) = self.tables(offset, t)?; // (T, D)
        x.rotary(&cos, &sin)
    }
}

/// Keys and values of earlier positions, for incremental decoding.
///
/// Each append writes the new positions after the cached ones; the kernel layer keeps the
/// buffers growable where it can write in place (f32 on the CPU), so a decoding step does not
/// copy the whole cache.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    k: AppendBuffer, // (B, Hkv, T, D)
    v: AppendBuffer,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.k.is_empty()
    }

    /// Keeps the first `len` positions (a conversation rolled back to a common prefix); the
    /// next append continues from there.
    pub fn truncate(&mut self, len: usize) {
        self.k.truncate(len);
        self.v.truncate(len);
    }

    /// Appends new keys and values `(B, Hkv, T, D)`; returns all cached ones.
    pub fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        if k.rank() != 4 || v.rank() != 4 || k.dims()[..3] != v.dims()[..3] {
            return Err(Error::shape(
                "KvCache::append",
                &[k.dims(), v.dims()],
                format!(
                    "keys {:?} and values {:?} must be (B, Hkv, T, D) with equal B, Hkv, T",
                    k.dims(),
                    v.dims()
                ),
            ));
        }
        Ok((self.k.append(2, &k)?, self.v.append(2, &v)?))
    }
}

/// Shape of a [`MultiHeadAttention`].
#[derive(Debug, Clone)]
pub struct AttentionConfig {
    /// model width
    pub dim: usize,
    /// query heads
    pub n_heads: usize,
    /// key/value heads (`n_heads` for MHA, fewer for GQA, 1 for MQA)
    pub n_kv_heads: usize,
    /// per-head width (usually `dim / n_heads`)
    pub head_dim: usize,
    /// biases on q/k/v (Qwen2, BERT)
    pub qkv_bias: bool,
    /// bias on the output projection
    pub o_bias: bool,
    /// causal self-attention
    pub causal: bool,
    /// rotary embeddings `(theta, max_positions)`, or none
    pub rope: Option<(f64, usize)>,
}

/// How queries, keys and values are projected from the input.
#[derive(Debug, Clone)]
pub enum QkvProjection {
    /// Three projections (Llama's `q_proj`, `k_proj`, `v_proj`; BERT's `query`, `key`,
    /// `value`).
    Separate {
        /// to `n_heads · head_dim`
        q: Projection,
        /// to `n_kv_heads · head_dim`
        k: Projection,
        /// to `n_kv_heads · head_dim`
        v: Projection,
    },
    /// One projection to queries, keys and values side by side (GPT-2's and nanoGPT's
    /// `c_attn`).
    Packed(Projection),
}

/// Multi-head attention with grouped-query heads, optional rotary embeddings and a KV cache;
/// its projections carry the checkpoint's names (Llama's by [`MultiHeadAttention::new`], any
/// others through [`MultiHeadAttention::from_parts`]).
#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    /// The query, key and value projections.
    pub qkv: QkvProjection,
    /// The output projection (`o_proj`, `c_proj`, `output.dense`).
    pub o: Projection,
    /// the configuration
    pub cfg: AttentionConfig,
    rope: Option<RotaryEmbedding>,
    /// dropout on the attention probabilities (active in training mode)
    dropout: Option<Dropout>,
}

impl MultiHeadAttention {
    /// Creates Llama's four projections under `vb`: `q_proj`, `k_proj`, `v_proj`, `o_proj`.
    pub fn new(vb: VarBuilder, cfg: AttentionConfig) -> Result<MultiHeadAttention> {
        let (d, hd) = (cfg.dim, cfg.head_dim);
        let kv = cfg.n_kv_heads * hd;
        let qkv = QkvProjection::Separate {
            q: Linear::new(vb.pp("q_proj"), d, cfg.n_heads * hd, cfg.qkv_bias)?.into(),
            k: Linear::new(vb.pp("k_proj"), d, kv, cfg.qkv_bias)?.into(),
            v: Linear::new(vb.pp("v_proj"), d, kv, cfg.qkv_bias)?.into(),
        };
        let o = Linear::new(vb.pp("o_proj"), cfg.n_heads * hd, d, cfg.o_bias)?;
        MultiHeadAttention::from_parts(vb, qkv, o.into(), cfg)
    }

    /// Attention over projections a model created with its own names; `vb` gives the store's
    /// dtype and device for the rotary tables. The projections' widths must fit `cfg`.
    pub fn from_parts(
        vb: VarBuilder,
        qkv: QkvProjection,
        o: Projection,
        cfg: AttentionConfig,
    ) -> Result<MultiHeadAttention> {
        const OP: &str = "MultiHeadAttention";
        if cfg.n_kv_heads == 0 || !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
            return Err(Error::data(
                OP,
                format!(
                    "{} heads are not a multiple of {} kv heads",
                    cfg.n_heads, cfg.n_kv_heads
                ),
            ));
        }
        let (q_dim, kv_dim) = (cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim);
        let widths = match &qkv {
            QkvProjection::Separate { q, k, v } => {
                q.out_dim() == q_dim && k.out_dim() == kv_dim && v.out_dim() == kv_dim
            }
            QkvProjection::Packed(p) => p.out_dim() == q_dim + 2 * kv_dim,
        };
        if !widths || o.out_dim() != cfg.dim {
            return Err(Error::data(
                OP,
                format!(
                    "projection widths do not fit {} query and {} key/value heads of {} and \
                     width {}",
                    cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.dim
                ),
            ));
        }
        let rope = match cfg.rope {
            Some((theta, max_pos)) => Some(RotaryEmbedding::new(
                cfg.head_dim,
                max_pos,
                theta,
                vb.store().dtype(),
                vb.store().device(),
            )?),
            None => None,
        };
        Ok(MultiHeadAttention {
            qkv,
            o,
            cfg,
            rope,
            dropout: None,
        })
    }

    /// With dropout on the attention probabilities (GPT-2's `attn_pdrop`, BERT's
    /// `attention_probs_dropout_prob`), following the dropout layer's train/eval mode.
    pub fn with_dropout(mut self, dropout: Dropout) -> MultiHeadAttention {
        self.dropout = Some(dropout);
        self
    }

    /// Queries `(B, T, H·hd)` from `x`, keys and values `(B, S, Hkv·hd)` from `ctx`.
    fn project(&self, x: &Tensor, ctx: &Tensor) -> Result<[Tensor; 3]> {
        match &self.qkv {
            QkvProjection::Separate { q, k, v } => {
                Ok([q.forward(x)?, k.forward(ctx)?, v.forward(ctx)?])
            }
            QkvProjection::Packed(p) => {
                let (q_dim, kv_dim) = (
                    self.cfg.n_heads * self.cfg.head_dim,
                    self.cfg.n_kv_heads * self.cfg.head_dim,
                );
                let sizes = [q_dim, kv_dim, kv_dim];
                let parts = p.forward(x)?.split_sizes(&sizes, -1)?;
                if std::ptr::eq(x, ctx) {
                    let [q, k, v] = <[Tensor; 3]>::try_from(parts).map_err(|_| split_error())?;
                    return Ok([q, k, v]);
                }
                let from_ctx = p.forward(ctx)?.split_sizes(&sizes, -1)?;
                let [_, k, v] = <[Tensor; 3]>::try_from(from_ctx).map_err(|_| split_error())?;
                Ok([parts[0].clone(), k, v])
            }
        }
    }

    /// `(B, T, heads·hd)` → `(B, heads, T, hd)`.
    fn split_heads(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t) = (x.dims()[0], x.dims()[1]);
        x.reshape_to(&[b, t, heads, self.cfg.head_dim])?
            .transpose(1, 2)
    }

    /// Self-attention over `x` `(B, T, C)`. `mask` (additive float or Bool keep-mask,
    /// broadcastable to `(B, H, T, T_total)`) adds padding; `cache` holds earlier positions.
    pub fn forward_with(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.attend(x, x, mask, cache, self.cfg.causal)
    }

    /// Cross-attention: queries from `x`, keys and values from `context` (never causal).
    pub fn forward_cross(
        &self,
        x: &Tensor,
        context: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.attend(x, context, mask, None, false)
    }

    fn attend(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        causal: bool,
    ) -> Result<Tensor> {
        if x.rank() != 3 || x.dims()[2] != self.cfg.dim {
            return Err(Error::shape(
                "MultiHeadAttention",
                &[x.dims()],
                format!("input must be (B, T, {}), got {:?}", self.cfg.dim, x.dims()),
            ));
        }
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let [q, k, v] = self.project(x, ctx)?;
        let mut q = self.split_heads(&q, self.cfg.n_heads)?; // (B, H, T, hd)
        let mut k = self.split_heads(&k, self.cfg.n_kv_heads)?; // (B, Hkv, S, hd)
        let v = self.split_heads(&v, self.cfg.n_kv_heads)?;
        if let Some(rope) = &self.rope {
            q = rope.apply(&q, offset)?;
            k = rope.apply(&k, offset)?;
        }
        let dropout_p = match &self.dropout {
            Some(d) if d.is_active() => d.p,
            _ => 0.0,
        };
        let how = CachedAttention {
            causal,
            mask,
            dropout_p,
            ..Default::default()
        };
        let y = attend_cached(&q, k, v, cache, &how)?; // (B, H, T, hd)
        let y = y
            .transpose(1, 2)?
            .reshape_to(&[b, t, self.cfg.n_heads * self.cfg.head_dim])?;
        self.o.forward(&y)
    }
}

/// How [`attend_cached`] masks, scales and drops.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedAttention<'a> {
    /// each query sees keys up to its own position (aligned to the end of the cache)
    pub causal: bool,
    /// an extra mask (additive float or Bool keep-mask), broadcastable to `(B, H, T, S)`
    pub mask: Option<&'a Tensor>,
    /// dropout on the probabilities
    pub dropout_p: f64,
    /// score scale; `1/√D` when `None`
    pub scale: Option<f64>,
    /// sliding window: a query at position `i` sees keys at `j` with `i - j < window`
    /// (Mistral's and Gemma's local layers, transformers' rule)
    pub window: Option<usize>,
}

/// Attention of `q` `(B, H, T, D)` over new keys/values `(B, Hkv, T, D)` appended to `cache`
/// (if any), masked, scaled and dropped as `how` says. Returns `(B, H, T, Dv)`.
pub fn attend_cached(
    q: &Tensor,
    k: Tensor,
    v: Tensor,
    cache: Option<&mut KvCache>,
    how: &CachedAttention,
) -> Result<Tensor> {
    let t = q.dims()[2];
    let offset = cache.as_ref().map_or(0, |c| c.len());
    let (k, v) = match cache {
        Some(c) => c.append(k, v)?,
        None => (k, v),
    };
    let total = k.dims()[2];
    let windowed = how.window.filter(|&w| total > w);
    // Top-left causality is right without a cache; with one, queries sit at the end.
    let mut opts = AttentionOpts {
        mask: how.mask.cloned(),
        causal: how.causal && offset == 0 && windowed.is_none(),
        scale: how.scale,
        dropout_p: how.dropout_p,
    };
    if (how.causal && offset > 0 && t > 1) || windowed.is_some() {
        let keep: Vec<bool> = (0..t * total)
            .map(|idx| {
                let (i, j) = (offset + idx / total, idx % total);
                (!how.causal || j <= i) && windowed.is_none_or(|w| i < j + w)
            })
            .collect();
        let keep = Tensor::from_vec(keep, &[t, total], q.device())?;
        opts.mask = Some(match opts.mask {
            None => keep,
            Some(m) if m.dtype() == DType::Bool => {
                let both = m.to_dtype(DType::I64)?.mul(&keep.to_dtype(DType::I64)?)?;
                both.gt_scalar(0.0)?
            }
            Some(m) => {
                let add = Tensor::zeros(&[t, total], m.dtype(), q.device())?
                    .masked_fill(&keep.logical_not()?, f64::NEG_INFINITY)?;
                m.add(&add)?
            }
        });
    }
    q.scaled_dot_product_attention(&k, &v, &opts)
}

impl Module for MultiHeadAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, None)
    }
}

/// Which normalization a block uses.
#[derive(Debug, Clone)]
pub enum Norm {
    /// LayerNorm with bias
    Layer(LayerNorm),
    /// RMSNorm
    Rms(RmsNorm),
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }
}

fn split_error() -> Error {
    Error::internal(
        "MultiHeadAttention",
        "a packed projection did not split in three",
    )
}
