//! GPT2LMHeadModel: the GPT blocks of `gpt.rs` in Hugging Face's Conv1D layout (packed
//! `c_attn`), GELU (tanh), learned positions, tied `lm_head`.

use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{Activation, Embedding, KvCache, LayerNorm, LoadOptions, VarBuilder, VarStore};
use ember_weights::Checkpoint;
use serde::Deserialize;

use crate::CausalLm;
use crate::gpt::{GptBlock, GptLayout, GptTransformer};

/// The fields of a GPT-2 `config.json` that Ember uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Gpt2Config {
    /// vocabulary size
    pub vocab_size: usize,
    /// context length
    pub n_positions: usize,
    /// width
    pub n_embd: usize,
    /// blocks
    pub n_layer: usize,
    /// heads
    pub n_head: usize,
    /// MLP width (4 · n_embd when null)
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// MLP activation (`gelu_new` in GPT-2)
    #[serde(default = "default_act")]
    pub activation_function: String,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}

/// GPT-2 with Hugging Face's names (`wte`, `wpe`, `h.{i}.attn.c_attn`, ..., `ln_f`); loads
/// checkpoints saved with or without the `transformer.` prefix.
pub struct Gpt2 {
    /// The parameters.
    pub store: VarStore,
    /// The configuration.
    pub cfg: Gpt2Config,
    raw_config: serde_json::Value,
    model: GptTransformer,
}

impl Gpt2 {
    /// A randomly initialized GPT-2 for `cfg`.
    pub fn new(cfg: Gpt2Config, device: Device, dtype: DType, seed: u64) -> Result<Gpt2> {
        if cfg.n_head == 0 || !cfg.n_embd.is_multiple_of(cfg.n_head) {
            return Err(Error::data(
                "Gpt2",
                format!(
                    "n_embd {} is not a multiple of n_head {}",
                    cfg.n_embd, cfg.n_head
                ),
            ));
        }
        let store = VarStore::with_seed(device, dtype, seed);
        let vb = VarBuilder::new(&store);
        let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let inner = cfg.n_inner.unwrap_or(4 * c);
        let act = Activation::from_hf(&cfg.activation_function)?;
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                GptBlock::new(
                    vb.pp("h").pp(i),
                    GptLayout::Gpt2,
                    (c, cfg.n_head, inner),
                    eps,
                    act,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let model = GptTransformer {
            wte: Embedding::new(vb.pp("wte"), cfg.vocab_size, c)?,
            wpe: Embedding::new(vb.pp("wpe"), cfg.n_positions, c)?,
            blocks,
            ln_f: LayerNorm::new(vb.pp("ln_f"), c, eps, true)?,
        };
        drop(vb);
        let raw_config = serde_json::json!({
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.n_inner,
            "layer_norm_epsilon": cfg.layer_norm_epsilon,
            "activation_function": cfg.activation_function, "tie_word_embeddings": true,
        });
        Ok(Gpt2 {
            store,
            cfg,
            raw_config,
            model,
        })
    }

    /// Loads `dir/config.json` and the weights (`transformer.`-prefixed or not), strictly;
    /// the causal-mask buffers of older files and the tied `lm_head.weight` are ignored.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Gpt2> {
        let dir = dir.as_ref();
        let raw = crate::read_config(dir)?;
        let mut model = Gpt2::new(crate::typed(dir, &raw)?, device, dtype, 0)?;
        model.raw_config = raw;
        let opts = LoadOptions {
            strip_prefix: Some("transformer.".into()),
            ignore: vec![
                "*.attn.bias".into(),
                "*.attn.masked_bias".into(),
                "lm_head.weight".into(),
            ],
            ..Default::default()
        };
        model.store.load(&Checkpoint::open(dir)?, &opts)?;
        Ok(model)
    }

    /// Writes `config.json` and `model.safetensors` (HF names, no `transformer.` prefix, as
    /// `GPT2Model` saves) so transformers loads the directory back.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::save_dir(dir.as_ref(), &self.raw_config, &self.store)
    }

    /// Logits `(B, T, V)` for ids `(B, T)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.model.forward(ids, None)
    }

    /// HF's causal-LM loss: logits at position t predict `labels[t + 1]`; -100 is ignored.
    pub fn loss(&self, ids: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let logits = self.forward(ids)?; // (B, T, V)
        let t = logits.dims()[1];
        let pred = logits
            .narrow(1, 0, t - 1)?
            .reshape(&[-1, self.cfg.vocab_size as isize])?;
        let next = labels.narrow(1, 1, t - 1)?.reshape(&[-1])?;
        pred.cross_entropy(&next, Default::default())
    }
}

impl CausalLm for Gpt2 {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.model.blocks.len()]
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        self.model.forward(ids, Some(cache))
    }
}
