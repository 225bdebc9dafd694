//! A configurable transformer block that GPT-, BERT- and Llama-style models share: the norm
//! kind and placement, the MLP kind and activation, and dropout on the attention
//! probabilities and on each residual branch, as one [`BlockConfig`].

use ember_core::{Result, Tensor};

use crate::attention::{AttentionConfig, MultiHeadAttention, Norm};
use crate::builder::VarBuilder;
use crate::layers::{Activation, Dropout, GatedMlp, LayerNorm, Mlp, RmsNorm};
use crate::{KvCache, Module};

/// The normalization of a [`Block`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// `nn.LayerNorm` (GPT-2, BERT), with or without bias.
    Layer {
        /// epsilon
        eps: f64,
        /// learned shift
        bias: bool,
    },
    /// RMSNorm (Llama).
    Rms {
        /// epsilon
        eps: f64,
    },
}

/// The feed-forward part of a [`Block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `fc2(act(fc1(x)))` (GPT-2, BERT).
    Plain,
    /// `down_proj(act(gate_proj(x)) · up_proj(x))` (Llama's SwiGLU, Gemma's GeGLU).
    Gated,
}

/// Everything a [`Block`] is made of.
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// the attention (heads, rotary, causal, biases)
    pub attention: AttentionConfig,
    /// MLP hidden width
    pub hidden: usize,
    /// norm kind
    pub norm: NormKind,
    /// MLP kind
    pub mlp: MlpKind,
    /// MLP activation
    pub activation: Activation,
    /// biases on the MLP projections
    pub mlp_bias: bool,
    /// norms before each sublayer (GPT-2, Llama) or after each residual add (BERT)
    pub pre_norm: bool,
    /// dropout on the attention probabilities (GPT-2's `attn_pdrop`)
    pub attn_dropout: f64,
    /// dropout on each sublayer's output before its residual add (`resid_pdrop`)
    pub resid_dropout: f64,
}

impl BlockConfig {
    /// Llama's block: RMSNorm before each sublayer, SwiGLU, no biases, no dropout.
    pub fn llama(attention: AttentionConfig, hidden: usize, eps: f64) -> BlockConfig {
        BlockConfig {
            attention,
            hidden,
            norm: NormKind::Rms { eps },
            mlp: MlpKind::Gated,
            activation: Activation::Silu,
            mlp_bias: false,
            pre_norm: true,
            attn_dropout: 0.0,
            resid_dropout: 0.0,
        }
    }

    /// GPT-2's block: LayerNorm before each sublayer, GELU (tanh) MLP with biases, dropout.
    pub fn gpt(attention: AttentionConfig, hidden: usize, dropout: f64) -> BlockConfig {
        BlockConfig {
            norm: NormKind::Layer {
                eps: 1e-5,
                bias: true,
            },
            mlp: MlpKind::Plain,
            activation: Activation::GeluTanh,
            mlp_bias: true,
            attn_dropout: dropout,
            resid_dropout: dropout,
            ..BlockConfig::llama(attention, hidden, 1e-5)
        }
    }

    /// BERT's block: LayerNorm after each residual add, GELU MLP with biases, dropout.
    pub fn bert(attention: AttentionConfig, hidden: usize, dropout: f64) -> BlockConfig {
        BlockConfig {
            norm: NormKind::Layer {
                eps: 1e-12,
                bias: true,
            },
            activation: Activation::Gelu,
            pre_norm: false,
            ..BlockConfig::gpt(attention, hidden, dropout)
        }
    }
}

/// The two halves of a block's feed-forward part.
#[derive(Debug, Clone)]
pub enum FeedForward {
    /// `fc1`, `fc2`
    Plain(Mlp),
    /// `gate_proj`, `up_proj`, `down_proj`
    Gated(GatedMlp),
}

/// A transformer block built from a [`BlockConfig`], with Llama's names: `input_layernorm`,
/// `self_attn` (`q_proj`, `k_proj`, `v_proj`, `o_proj`), `post_attention_layernorm`, `mlp`
/// (`gate_proj`, `up_proj`, `down_proj`, or `fc1`, `fc2`). Dropout follows the store's
/// `train()` / `eval()`.
///
/// ```
/// use ember_nn::{AttentionConfig, Block, BlockConfig, Module, VarBuilder, VarStore};
/// use ember_core::{DType, Device, Tensor};
/// let store = VarStore::new(Device::Cpu, DType::F32);
/// let attention = AttentionConfig { dim: 16, n_heads: 4, n_kv_heads: 4, head_dim: 4,
///     qkv_bias: true, o_bias: true, causal: false, rope: None };
/// let block = Block::new(VarBuilder::new(&store).pp("layer.0"), BlockConfig::bert(attention, 64, 0.1))?;
/// store.eval();
/// let y = block.forward(&Tensor::ones(&[2, 5, 16], DType::F32, Device::Cpu)?)?; // (2, 5, 16)
/// assert_eq!(y.dims(), &[2, 5, 16]);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Block {
    /// `input_layernorm`
    pub attn_norm: Norm,
    /// `self_attn`
    pub attn: MultiHeadAttention,
    /// `post_attention_layernorm`
    pub mlp_norm: Norm,
    /// `mlp`
    pub mlp: FeedForward,
    /// the configuration
    pub cfg: BlockConfig,
    resid_dropout: Dropout,
}

impl Block {
    /// Creates the block's parameters under `vb`.
    pub fn new(vb: VarBuilder, cfg: BlockConfig) -> Result<Block> {
        let dim = cfg.attention.dim;
        let norm = |name: &str| -> Result<Norm> {
            Ok(match cfg.norm {
                NormKind::Layer { eps, bias } => {
                    Norm::Layer(LayerNorm::new(vb.pp(name), dim, eps, bias)?)
                }
                NormKind::Rms { eps } => Norm::Rms(RmsNorm::new(vb.pp(name), dim, eps)?),
            })
        };
        let mlp = match cfg.mlp {
            MlpKind::Plain => FeedForward::Plain(Mlp::new(
                vb.pp("mlp"),
                dim,
                cfg.hidden,
                cfg.activation,
                cfg.mlp_bias,
                ("fc1", "fc2"),
            )?),
            MlpKind::Gated => FeedForward::Gated(GatedMlp::new(
                vb.pp("mlp"),
                dim,
                cfg.hidden,
                cfg.activation,
                cfg.mlp_bias,
            )?),
        };
        Ok(Block {
            attn_norm: norm("input_layernorm")?,
            attn: MultiHeadAttention::new(vb.pp("self_attn"), cfg.attention.clone())?
                .with_dropout(Dropout::new(vb.clone(), cfg.attn_dropout)?),
            mlp_norm: norm("post_attention_layernorm")?,
            mlp,
            resid_dropout: Dropout::new(vb, cfg.resid_dropout)?,
            cfg,
        })
    }

    /// The block with an optional mask (additive float or Bool keep-mask) and KV cache.
    pub fn forward_with(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let attn = |h: &Tensor, cache: Option<&mut KvCache>| -> Result<Tensor> {
            self.resid_dropout
                .forward(&self.attn.forward_with(h, mask, cache)?)
        };
        let mlp = |h: &Tensor| -> Result<Tensor> {
            let y = match &self.mlp {
                FeedForward::Plain(m) => m.forward(h)?,
                FeedForward::Gated(m) => m.forward(h)?,
            };
            self.resid_dropout.forward(&y)
        };
        if self.cfg.pre_norm {
            let h = x.add(&attn(&self.attn_norm.forward(x)?, cache)?)?;
            h.add(&mlp(&self.mlp_norm.forward(&h)?)?)
        } else {
            let h = self.attn_norm.forward(&x.add(&attn(x, cache)?)?)?;
            self.mlp_norm.forward(&h.add(&mlp(&h)?)?)
        }
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, None)
    }
}
