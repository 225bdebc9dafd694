//! One layer of the decoder family: attention (separate or fused q/k/v projections,
//! optional per-head q/k norms, the layer's own rope base and sliding window) and a gated
//! MLP (separate or fused gate/up), with RMSNorm before each and, for Gemma 3, after each.

use ember_core::{Result, Tensor};
use ember_nn::{
    Activation, CachedAttention, Dropout, GatedMlp, KvCache, Linear, Module, QkvProjection,
    RmsNorm, RotaryEmbedding, VarBuilder, attend_cached,
};

use crate::config::{Arch, DecoderConfig};

/// The MLP of a decoder layer.
#[derive(Debug, Clone)]
pub enum DecoderMlp {
    /// `down(act(gate_proj(x)) · up_proj(x))`
    Gated(GatedMlp),
    /// Phi-3's `gate_up_proj`: gate and up side by side in one projection (gate first).
    Fused {
        /// `gate_up_proj`: dim → 2 · hidden
        gate_up: Linear,
        /// `down_proj`: hidden → dim
        down: Linear,
        /// the gate's activation
        act: Activation,
    },
}

impl Module for DecoderMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            DecoderMlp::Gated(m) => m.forward(x),
            DecoderMlp::Fused { gate_up, down, act } => {
                let halves = gate_up.forward(x)?.chunk(2, -1)?; // 2 × (B, T, hidden)
                if *act == Activation::Silu {
                    return down.forward(&halves[0].silu_mul(&halves[1])?);
                }
                let g = act.forward(&halves[0])?;
                down.forward(&halves[1].mul(&g)?)
            }
        }
    }
}

/// One decoder layer with Hugging Face's names under `model.layers.{i}`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// `input_layernorm`
    pub input_norm: RmsNorm,
    /// Gemma 3's `post_attention_layernorm`, on the attention output before the residual
    pub post_attn_norm: Option<RmsNorm>,
    /// before the MLP: `post_attention_layernorm` (Llama's name) or Gemma 3's
    /// `pre_feedforward_layernorm`
    pub mlp_norm: RmsNorm,
    /// Gemma 3's `post_feedforward_layernorm`
    pub post_mlp_norm: Option<RmsNorm>,
    /// `q_proj`, `k_proj`, `v_proj`, or Phi-3's packed `qkv_proj`
    pub qkv: QkvProjection,
    /// `o_proj`
    pub o: Linear,
    /// per-head `q_norm` and `k_norm` (Qwen3, Gemma 3)
    pub qk_norm: Option<(RmsNorm, RmsNorm)>,
    /// `mlp`
    pub mlp: DecoderMlp,
    /// dropout on the attention probabilities (`attention_dropout`), in training mode
    pub attn_dropout: Option<Dropout>,
    /// Phi-3's `resid_pdrop` on each sublayer's output before its residual add
    pub resid_dropout: Option<Dropout>,
    rope: RotaryEmbedding,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: Option<f64>,
    window: Option<usize>,
}

impl DecoderLayer {
    /// Creates layer `i` of `cfg` under `vb` (`model.layers.{i}`).
    pub(crate) fn new(vb: VarBuilder, cfg: &DecoderConfig, i: usize) -> Result<DecoderLayer> {
        let bad = |msg: String| ember_core::Error::data("DecoderLayer", msg);
        let arch = cfg.arch().map_err(bad)?;
        let attn = cfg.layer(i).map_err(bad)?;
        let (dim, hd, eps) = (cfg.hidden_size, cfg.head_dim(), cfg.rms_norm_eps);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        let gemma = arch == Arch::Gemma3;
        let norm = |vb: VarBuilder, width: usize| {
            if gemma {
                RmsNorm::with_unit_offset(vb, width, eps)
            } else {
                RmsNorm::new(vb, width, eps)
            }
        };
        let a = vb.pp("self_attn");
        let bias = cfg.qkv_bias();
        let qkv = if arch == Arch::Phi3 {
            let width = (heads + 2 * kv_heads) * hd;
            QkvProjection::Packed(Linear::new(a.pp("qkv_proj"), dim, width, bias)?.into())
        } else {
            QkvProjection::Separate {
                q: Linear::new(a.pp("q_proj"), dim, heads * hd, bias)?.into(),
                k: Linear::new(a.pp("k_proj"), dim, kv_heads * hd, bias)?.into(),
                v: Linear::new(a.pp("v_proj"), dim, kv_heads * hd, bias)?.into(),
            }
        };
        let o = Linear::new(a.pp("o_proj"), heads * hd, dim, cfg.attention_bias)?;
        let qk_norm = if arch.qk_norm() {
            Some((norm(a.pp("q_norm"), hd)?, norm(a.pp("k_norm"), hd)?))
        } else {
            None
        };
        let store = vb.store();
        let mut rope = RotaryEmbedding::new(
            hd,
            cfg.max_position_embeddings,
            attn.theta,
            store.dtype(),
            store.device(),
        )?;
        if attn.linear_factor != 1.0 {
            rope = rope.with_linear_scaling(attn.linear_factor)?;
        }
        let act = Activation::from_hf(cfg.activation())?;
        let m = vb.pp("mlp");
        let hidden = cfg.intermediate_size;
        let mlp = if arch == Arch::Phi3 {
            DecoderMlp::Fused {
                gate_up: Linear::new(m.pp("gate_up_proj"), dim, 2 * hidden, false)?,
                down: Linear::new(m.pp("down_proj"), hidden, dim, false)?,
                act,
            }
        } else {
            DecoderMlp::Gated(GatedMlp::new(m, dim, hidden, act, false)?)
        };
        let (post_attn_norm, mlp_norm, post_mlp_norm) = if gemma {
            (
                Some(norm(vb.pp("post_attention_layernorm"), dim)?),
                norm(vb.pp("pre_feedforward_layernorm"), dim)?,
                Some(norm(vb.pp("post_feedforward_layernorm"), dim)?),
            )
        } else {
            (None, norm(vb.pp("post_attention_layernorm"), dim)?, None)
        };
        // Dropout follows the store's train/eval mode; a zero probability needs no layer.
        let dropout = |p: Option<f64>| -> Result<Option<Dropout>> {
            match p.unwrap_or(0.0) {
                0.0 => Ok(None),
                p => Dropout::new(vb.clone(), p).map(Some),
            }
        };
        let resid_pdrop = cfg.resid_pdrop.filter(|_| arch == Arch::Phi3);
        Ok(DecoderLayer {
            attn_dropout: dropout(cfg.attention_dropout)?,
            resid_dropout: dropout(resid_pdrop)?,
            input_norm: norm(vb.pp("input_layernorm"), dim)?,
            post_attn_norm,
            mlp_norm,
            post_mlp_norm,
            qkv,
            o,
            qk_norm,
            mlp,
            rope,
            heads,
            kv_heads,
            head_dim: hd,
            scale: cfg.attention_scale(),
            window: attn.window,
        })
    }

    /// Queries, keys and values `(B, T, heads·hd)` of `x`.
    fn project(&self, x: &Tensor) -> Result<[Tensor; 3]> {
        match &self.qkv {
            QkvProjection::Separate { q, k, v } => {
                Ok([q.forward(x)?, k.forward(x)?, v.forward(x)?])
            }
            QkvProjection::Packed(p) => {
                let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
                let parts = p.forward(x)?.split_sizes(&[q, kv, kv], -1)?;
                <[Tensor; 3]>::try_from(parts).map_err(|_| {
                    ember_core::Error::internal("DecoderLayer", "qkv_proj did not split in three")
                })
            }
        }
    }

    /// Self-attention of `x` `(B, T, C)` after the cached positions, before the residual.
    fn attention(&self, x: &Tensor, mask: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor> {
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let offset = cache.len();
        let [q, k, v] = self.project(x)?;
        let heads = |x: &Tensor, n: usize| x.reshape_to(&[b, t, n, self.head_dim]); // (B, T, n, hd)
        let (mut q, mut k) = (heads(&q, self.heads)?, heads(&k, self.kv_heads)?);
        if let Some((qn, kn)) = &self.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let q = self.rope.apply(&q.transpose(1, 2)?, offset)?; // (B, H, T, hd)
        let k = self.rope.apply(&k.transpose(1, 2)?, offset)?; // (B, Hkv, T, hd)
        let v = heads(&v, self.kv_heads)?.transpose(1, 2)?;
        let how = CachedAttention {
            causal: true,
            mask,
            scale: self.scale,
            window: self.window,
            dropout_p: match &self.attn_dropout {
                Some(d) if d.is_active() => d.p,
                _ => 0.0,
            },
        };
        let y = attend_cached(&q, k, v, Some(cache), &how)?; // (B, H, T, hd)
        let y = y
            .transpose(1, 2)?
            .reshape_to(&[b, t, self.heads * self.head_dim])?;
        self.o.forward(&y)
    }

    /// The layer over `x` `(B, T, C)` with an optional extra mask and the layer's cache.
    pub fn forward_with(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let mut a = self.attention(&self.input_norm.forward(x)?, mask, cache)?;
        if let Some(n) = &self.post_attn_norm {
            a = n.forward(&a)?;
        }
        if let Some(d) = &self.resid_dropout {
            a = d.forward(&a)?;
        }
        let h = x.add(&a)?;
        let mut m = self.mlp.forward(&self.mlp_norm.forward(&h)?)?;
        if let Some(n) = &self.post_mlp_norm {
            m = n.forward(&m)?;
        }
        if let Some(d) = &self.resid_dropout {
            m = d.forward(&m)?;
        }
        h.add(&m)
    }
}
