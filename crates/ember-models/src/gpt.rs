//! GPT, the model of nanoGPT and GPT-2: token and learned position embeddings, pre-LayerNorm
//! blocks of causal self-attention and a GELU MLP, a final LayerNorm, and the output head tied
//! to the token embedding. [`Gpt`] is nanoGPT's (Linear layout, its parameter names, optional
//! biases); [`crate::Gpt2`] builds the same blocks in Hugging Face's Conv1D layout.

use ember_core::{DType, Error, Generator, Result, Tensor, no_grad};
use ember_nn::{
    Activation, AttentionConfig, Conv1D, Dropout, Embedding, Init, KvCache, LayerNorm, Linear,
    Module, MultiHeadAttention, PlanLimits, Projection, QkvProjection, VarBuilder, VarStore,
};
use serde::{Deserialize, Serialize};

use crate::CausalLm;
use crate::config::{divides, positive, times};

/// How a GPT's projections are stored and initialized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GptLayout {
    /// nanoGPT: `Linear` weights `[out, in]` drawn from N(0, 0.02), the residual projections
    /// (`c_proj`) from N(0, 0.02/√(2·layers)), zero biases when `bias`.
    NanoGpt {
        /// Biases on the projections and LayerNorms.
        bias: bool,
        /// Blocks in the model (scales the residual projections' init).
        n_layer: usize,
    },
    /// Hugging Face's GPT-2: `Conv1D` weights `[in, out]` with biases.
    Gpt2,
}

impl GptLayout {
    /// A projection `in_dim → out_dim` under `vb`; `residual` marks the ones that write into
    /// the residual stream.
    fn projection(
        self,
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        residual: bool,
    ) -> Result<Projection> {
        match self {
            GptLayout::Gpt2 => Ok(Conv1D::new(vb, in_dim, out_dim)?.into()),
            GptLayout::NanoGpt { bias, n_layer } => {
                let std = if residual {
                    0.02 / (2.0 * n_layer as f64).sqrt()
                } else {
                    0.02
                };
                let weight = vb.get(
                    "weight",
                    &[out_dim, in_dim],
                    Init::Normal { mean: 0.0, std },
                )?;
                let bias = match bias {
                    true => Some(vb.get("bias", &[out_dim], Init::Zeros)?),
                    false => None,
                };
                Ok(Linear { weight, bias }.into())
            }
        }
    }

    fn norm_bias(self) -> bool {
        match self {
            GptLayout::NanoGpt { bias, .. } => bias,
            GptLayout::Gpt2 => true,
        }
    }
}

/// One GPT block: `x + attn(ln_1(x))`, then `x + c_proj(act(c_fc(ln_2(x))))`, with the
/// names `ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`.
#[derive(Debug, Clone)]
pub struct GptBlock {
    /// `ln_1`
    pub ln_1: LayerNorm,
    /// `attn`: causal self-attention with the packed `c_attn` projection
    pub attn: MultiHeadAttention,
    /// `ln_2`
    pub ln_2: LayerNorm,
    /// `mlp.c_fc`: width → inner
    pub c_fc: Projection,
    /// `mlp.c_proj`: inner → width
    pub c_proj: Projection,
    /// The MLP's activation.
    pub act: Activation,
    /// GPT-2's `resid_pdrop` on the attention and MLP outputs before each residual add
    pub resid_dropout: Option<Dropout>,
}

impl GptBlock {
    /// A block of width `c` with `n_head` heads, an MLP of `inner`, LayerNorm `eps`.
    pub fn new(
        vb: VarBuilder,
        layout: GptLayout,
        (c, n_head, inner): (usize, usize, usize),
        eps: f64,
        act: Activation,
    ) -> Result<GptBlock> {
        let ln_1 = LayerNorm::new(vb.pp("ln_1"), c, eps, layout.norm_bias())?;
        let c_attn = layout.projection(vb.pp("attn").pp("c_attn"), c, 3 * c, false)?;
        let attn_proj = layout.projection(vb.pp("attn").pp("c_proj"), c, c, true)?;
        let ln_2 = LayerNorm::new(vb.pp("ln_2"), c, eps, layout.norm_bias())?;
        let c_fc = layout.projection(vb.pp("mlp").pp("c_fc"), c, inner, false)?;
        let c_proj = layout.projection(vb.pp("mlp").pp("c_proj"), inner, c, true)?;
        let cfg = AttentionConfig {
            dim: c,
            n_heads: n_head,
            n_kv_heads: n_head,
            head_dim: c / n_head,
            qkv_bias: false,
            o_bias: false,
            causal: true,
            rope: None,
        };
        let attn =
            MultiHeadAttention::from_parts(vb, QkvProjection::Packed(c_attn), attn_proj, cfg)?;
        Ok(GptBlock {
            ln_1,
            attn,
            ln_2,
            c_fc,
            c_proj,
            act,
            resid_dropout: None,
        })
    }

    /// With dropout in training mode (following `vb`'s store): `attn_p` on the attention
    /// probabilities, `resid_p` on each sublayer's output (GPT-2's `attn_pdrop`,
    /// `resid_pdrop`); zero adds none.
    pub fn with_dropout(mut self, vb: &VarBuilder, attn_p: f64, resid_p: f64) -> Result<GptBlock> {
        if attn_p > 0.0 {
            self.attn = self.attn.with_dropout(Dropout::new(vb.clone(), attn_p)?);
        }
        if resid_p > 0.0 {
            self.resid_dropout = Some(Dropout::new(vb.clone(), resid_p)?);
        }
        Ok(self)
    }

    fn resid(&self, x: Tensor) -> Result<Tensor> {
        match &self.resid_dropout {
            Some(d) => d.forward(&x),
            None => Ok(x),
        }
    }

    /// The block on `x` `(B, T, C)`, after the positions held in `cache` when given.
    pub fn forward_with(&self, x: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let a = self
            .attn
            .forward_with(&self.ln_1.forward(x)?, None, cache)?;
        let x = x.add(&self.resid(a)?)?;
        let h = self
            .act
            .forward(&self.c_fc.forward(&self.ln_2.forward(&x)?)?)?; // (B, T, inner)
        x.add(&self.resid(self.c_proj.forward(&h)?)?)
    }
}

/// The GPT transformer: `wte`, `wpe`, the blocks `h.{i}`, `ln_f`, and the head tied to `wte`.
#[derive(Debug, Clone)]
pub struct GptTransformer {
    /// `wte`: `(V, C)` token embeddings, also the output head
    pub wte: Embedding,
    /// `wpe`: `(positions, C)` learned positions
    pub wpe: Embedding,
    /// `h.{i}`
    pub blocks: Vec<GptBlock>,
    /// `ln_f`
    pub ln_f: LayerNorm,
    /// GPT-2's `embd_pdrop` on the embeddings (training mode)
    pub embd_dropout: Option<Dropout>,
    /// gradient checkpointing of the blocks (off by default)
    pub checkpointing: ember_nn::Checkpointing,
}

impl GptTransformer {
    /// Logits `(B, T, V)` for token ids `(B, T)`, at the positions after those in `cache`
    /// (one per block) when given.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut [KvCache]>) -> Result<Tensor> {
        let x = self.hidden(ids, cache)?; // (B, T, C)
        ember_nn::linear_with(&x, &self.wte.weight, None) // (B, T, V), tied head
    }

    /// Logits `(B, 1, V)` of the last position only (the head on one row).
    pub fn forward_last(&self, ids: &Tensor, cache: Option<&mut [KvCache]>) -> Result<Tensor> {
        let x = self.hidden(ids, cache)?; // (B, T, C)
        let t = x.dims()[1];
        ember_nn::linear_with(&x.narrow(1, t - 1, 1)?, &self.wte.weight, None)
    }

    /// The final LayerNorm's output `(B, T, C)`.
    pub(crate) fn hidden(&self, ids: &Tensor, cache: Option<&mut [KvCache]>) -> Result<Tensor> {
        if ids.rank() != 2 {
            return Err(Error::shape(
                "Gpt",
                &[ids.dims()],
                format!("token ids must be (B, T), got {:?}", ids.dims()),
            ));
        }
        let t = ids.dims()[1];
        let offset = cache
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, KvCache::len);
        let positions = self.wpe.weight.dims()[0];
        if offset + t > positions {
            return Err(Error::shape(
                "Gpt",
                &[ids.dims()],
                format!(
                    "{} positions exceed the {positions} learned positions",
                    offset + t
                ),
            ));
        }
        let (start, end) = (offset as f64, (offset + t) as f64);
        let pos = Tensor::arange(start, end, 1.0, DType::I64, ids.device())?; // (T,)
        let mut x = self.wte.forward(ids)?.add(&self.wpe.forward(&pos)?)?; // (B, T, C)
        if let Some(d) = &self.embd_dropout {
            x = d.forward(&x)?;
        }
        match cache {
            Some(cache) => {
                for (blk, kv) in self.blocks.iter().zip(cache.iter_mut()) {
                    x = blk.forward_with(&x, Some(kv))?;
                }
            }
            None => {
                for blk in &self.blocks {
                    x = if self.checkpointing.applies() {
                        let blk = blk.clone();
                        ember_core::checkpoint(move |x| blk.forward_with(x, None), &x)?
                    } else {
                        blk.forward_with(&x, None)?
                    };
                }
            }
        }
        self.ln_f.forward(&x) // (B, T, C)
    }
}

/// The shape of a nanoGPT model (as nanoGPT's `GPTConfig`, without dropout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    /// vocabulary size
    pub vocab_size: usize,
    /// context length (learned positions)
    pub block_size: usize,
    /// blocks
    pub n_layer: usize,
    /// heads per block
    pub n_head: usize,
    /// width
    pub n_embd: usize,
    /// biases on the projections and LayerNorms
    #[serde(default)]
    pub bias: bool,
}

impl GptConfig {
    /// Checks that every size is positive, `n_head` divides `n_embd`, and the MLP and
    /// packed-projection widths (4 · and 3 · `n_embd`) fit.
    pub fn validate(&self) -> Result<()> {
        let check = || -> std::result::Result<(), String> {
            positive(&[
                ("vocab_size", self.vocab_size),
                ("block_size", self.block_size),
                ("n_layer", self.n_layer),
                ("n_head", self.n_head),
                ("n_embd", self.n_embd),
            ])?;
            divides("n_embd", self.n_embd, "n_head", self.n_head)?;
            times("4 × n_embd", 4, self.n_embd)?;
            Ok(())
        };
        check().map_err(|msg| Error::data("GptConfig", msg))
    }
}

/// nanoGPT's GPT with its parameter names (`transformer.wte.weight`,
/// `transformer.h.0.attn.c_attn.weight`, ...), GPT-2's initialization and exact GELU.
///
/// ```
/// use ember_core::{DType, Device, Tensor};
/// use ember_models::{Gpt, GptConfig};
/// use ember_nn::{VarBuilder, VarStore};
/// let store = VarStore::with_seed(Device::Cpu, DType::F32, 0);
/// let cfg = GptConfig { vocab_size: 65, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, bias: false };
/// let gpt = Gpt::new(VarBuilder::new(&store), cfg)?;
/// let idx = Tensor::from_vec(vec![1i64, 2, 3, 4], &[1, 4], Device::Cpu)?;
/// assert_eq!(gpt.forward(&idx)?.dims(), &[1, 4, 65]);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gpt {
    /// The configuration.
    pub cfg: GptConfig,
    /// The transformer.
    pub model: GptTransformer,
}

impl Gpt {
    /// Creates the model's parameters under `vb` (nanoGPT's names below `transformer.`).
    ///
    /// The config is validated first; [`Gpt::checked`] also checks the total size against
    /// memory before allocating.
    pub fn new(vb: VarBuilder, cfg: GptConfig) -> Result<Gpt> {
        cfg.validate()?;
        let c = cfg.n_embd;
        let layout = GptLayout::NanoGpt {
            bias: cfg.bias,
            n_layer: cfg.n_layer,
        };
        let t = vb.pp("transformer");
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let sizes = (c, cfg.n_head, 4 * c);
                GptBlock::new(t.pp("h").pp(i), layout, sizes, 1e-5, Activation::Gelu)
            })
            .collect::<Result<Vec<_>>>()?;
        let normal = Init::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let wte = t.pp("wte").get("weight", &[cfg.vocab_size, c], normal)?;
        let wpe = t.pp("wpe").get("weight", &[cfg.block_size, c], normal)?;
        let ln_f = LayerNorm::new(t.pp("ln_f"), c, 1e-5, cfg.bias)?;
        let model = GptTransformer {
            checkpointing: Default::default(),
            wte: Embedding { weight: wte },
            wpe: Embedding { weight: wpe },
            blocks,
            ln_f,
            embd_dropout: None,
        };
        Ok(Gpt { cfg, model })
    }

    /// A model in `store` after checking, without allocating, that its parameters fit in
    /// the device's memory (an [`Error::TooLarge`] naming the bytes otherwise).
    pub fn checked(store: &VarStore, cfg: GptConfig) -> Result<Gpt> {
        cfg.validate()?;
        let limits = PlanLimits::of_memory(store.device());
        Gpt::new(
            VarBuilder::new(&VarStore::plan(store.dtype(), limits)),
            cfg.clone(),
        )?;
        Gpt::new(VarBuilder::new(store), cfg)
    }

    /// Next-token logits `(B, T, V)` for token ids `(B, T)`.
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        self.model.forward(idx, None)
    }

    /// The mean cross-entropy of the logits at every position against `targets` `(B, T)`;
    /// the tied head and the loss are one fused op (no `(B, T, V)` logits).
    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let h = self.model.hidden(idx, None)?; // (B, T, C)
        ember_nn::loss::linear_cross_entropy(&h, &self.model.wte.weight, None, targets)
    }

    /// `n` tokens sampled one at a time after `context` (its last `block_size` tokens seen),
    /// at `temperature` (0: greedy), by inverse-CDF draws from `g`; without gradients.
    pub fn sample(
        &self,
        context: &[i64],
        n: usize,
        temperature: f64,
        g: &mut Generator,
    ) -> Result<Vec<i64>> {
        let _no_grad = no_grad();
        let device = self.model.wte.weight.tensor().device();
        let mut ids = context.to_vec();
        for _ in 0..n {
            let window = &ids[ids.len().saturating_sub(self.cfg.block_size)..];
            let x = Tensor::from_slice(window, &[1, window.len()], device)?;
            let logits = self.forward(&x)?.narrow(1, window.len() - 1, 1)?; // (1, 1, V)
            if temperature == 0.0 {
                ids.push(logits.argmax(-1, false)?.reshape(&[-1])?.to_vec::<i64>()?[0]);
                continue;
            }
            let probs = logits
                .div_scalar(temperature)?
                .softmax(-1)?
                .to_vec::<f32>()?;
            if probs.iter().any(|p| !p.is_finite()) {
                return Err(Error::data(
                    "Gpt::sample",
                    "the model's probabilities are not finite",
                ));
            }
            let mut u = g.uniform() as f32;
            let mut next = probs.len() - 1;
            for (i, p) in probs.iter().enumerate() {
                if u < *p {
                    next = i;
                    break;
                }
                u -= p;
            }
            ids.push(next as i64);
        }
        Ok(ids[context.len()..].to_vec())
    }
}

impl CausalLm for Gpt {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.model.blocks.len()]
    }

    fn max_positions(&self) -> usize {
        self.cfg.block_size
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        self.model.forward(ids, Some(cache))
    }

    fn forward_last(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        self.model.forward_last(ids, Some(cache))
    }
}
