//! GPT2LMHeadModel: the GPT blocks of `gpt.rs` in Hugging Face's Conv1D layout (packed
//! `c_attn`), GELU (tanh), learned positions, tied `lm_head`.

use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{
    Activation, Dropout, Embedding, KvCache, LayerNorm, LoadOptions, VarBuilder, VarStore,
    build_checked,
};
use serde::Deserialize;

use crate::CausalLm;
use crate::config::{divides, finite, positive, probability, times};
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
    /// dropout on the embeddings (training mode)
    #[serde(default = "default_dropout")]
    pub embd_pdrop: f64,
    /// dropout on the attention probabilities (training mode)
    #[serde(default = "default_dropout")]
    pub attn_pdrop: f64,
    /// dropout on each sublayer's output before its residual add (training mode)
    #[serde(default = "default_dropout")]
    pub resid_pdrop: f64,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_dropout() -> f64 {
    0.1
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

impl Gpt2Config {
    /// Checks that the sizes are positive and consistent (`n_head` divides `n_embd`, the
    /// MLP and packed-projection widths fit), the epsilon is finite and the activation known.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|msg| Error::data("Gpt2Config", msg))
    }

    fn check(&self) -> std::result::Result<(), String> {
        positive(&[
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.n_inner.unwrap_or(1)),
        ])?;
        divides("n_embd", self.n_embd, "n_head", self.n_head)?;
        times("3 × n_embd", 3, self.n_embd)?;
        self.inner()?;
        finite("layer_norm_epsilon", self.layer_norm_epsilon, 0.0)?;
        for (name, p) in [
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
            ("resid_pdrop", self.resid_pdrop),
        ] {
            probability(name, Some(p))?;
        }
        Activation::from_hf(&self.activation_function).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The MLP width: `n_inner`, or 4 · `n_embd`.
    fn inner(&self) -> std::result::Result<usize, String> {
        match self.n_inner {
            Some(n) => Ok(n),
            None => times("4 × n_embd", 4, self.n_embd),
        }
    }
}

impl Gpt2 {
    /// Training mode (dropout active), as `model.train()`; the same as `store.train()`.
    pub fn train(&self) {
        self.store.train();
    }

    /// Eval mode (dropout off), as `model.eval()`; the same as `store.eval()`.
    pub fn eval(&self) {
        self.store.eval();
    }

    /// A randomly initialized GPT-2 for `cfg`; the config is validated and the total size
    /// checked against the device's memory before anything is allocated.
    pub fn new(cfg: Gpt2Config, device: Device, dtype: DType, seed: u64) -> Result<Gpt2> {
        cfg.validate()?;
        let raw = serde_json::json!({
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.n_inner,
            "layer_norm_epsilon": cfg.layer_norm_epsilon,
            "activation_function": cfg.activation_function, "tie_word_embeddings": true,
            "embd_pdrop": cfg.embd_pdrop, "attn_pdrop": cfg.attn_pdrop,
            "resid_pdrop": cfg.resid_pdrop,
        });
        let store = VarStore::with_seed(device, dtype, seed);
        build_checked(store, |store| Gpt2::build(&cfg, raw.clone(), store))
    }

    /// Creates the parameters in `store` (initialized, planned or read, as the store does).
    fn build(cfg: &Gpt2Config, raw_config: serde_json::Value, store: VarStore) -> Result<Gpt2> {
        let vb = VarBuilder::new(&store);
        let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let inner = cfg.inner().map_err(|msg| Error::data("Gpt2", msg))?;
        let act = Activation::from_hf(&cfg.activation_function)?;
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                GptBlock::new(
                    vb.pp("h").pp(i),
                    GptLayout::Gpt2,
                    (c, cfg.n_head, inner),
                    eps,
                    act,
                )?
                .with_dropout(&vb, cfg.attn_pdrop, cfg.resid_pdrop)
            })
            .collect::<Result<Vec<_>>>()?;
        let model = GptTransformer {
            checkpointing: Default::default(),
            wte: Embedding::new(vb.pp("wte"), cfg.vocab_size, c)?,
            wpe: Embedding::new(vb.pp("wpe"), cfg.n_positions, c)?,
            blocks,
            ln_f: LayerNorm::new(vb.pp("ln_f"), c, eps, true)?,
            embd_dropout: match cfg.embd_pdrop {
                0.0 => None,
                p => Some(Dropout::new(vb.clone(), p)?),
            },
        };
        drop(vb);
        Ok(Gpt2 {
            store,
            cfg: cfg.clone(),
            raw_config,
            model,
        })
    }

    /// Loads `dir/config.json` and the weights (`transformer.`-prefixed or not), strictly;
    /// the causal-mask buffers of older files and the tied `lm_head.weight` are ignored. The
    /// config is validated and every parameter checked against the checkpoint's index before
    /// any is allocated; each is then read straight from the file.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Gpt2> {
        Gpt2::load(dir.as_ref(), device, dtype, &[])
    }

    /// The transformer of a task-head checkpoint (`transformer.*`, the head's names ignored).
    pub(crate) fn load_body(dir: &Path, device: Device, dtype: DType) -> Result<Gpt2> {
        Gpt2::load(dir, device, dtype, &["score.*"])
    }

    /// [`Gpt2::from_pretrained`], also ignoring the checkpoint names `also_ignore`.
    fn load(dir: &Path, device: Device, dtype: DType, also_ignore: &[&str]) -> Result<Gpt2> {
        let raw = crate::read_config(dir)?;
        crate::expect_model_type(dir, &raw, "Gpt2::from_pretrained", &["gpt2"])?;
        let cfg: Gpt2Config = crate::typed(dir, &raw)?;
        cfg.check().map_err(|msg| crate::config_error(dir, msg))?;
        let ignore: Vec<String> = ["*.attn.bias", "*.attn.masked_bias", "lm_head.weight"]
            .iter()
            .chain(also_ignore)
            .map(|s| s.to_string())
            .collect();
        let opts = LoadOptions {
            strip_prefix: Some("transformer.".into()),
            ignore,
            ..Default::default()
        };
        crate::build_from_dir(
            dir,
            &opts,
            device,
            dtype,
            |store| Gpt2::build(&cfg, raw.clone(), store),
            |m| &m.store,
        )
    }

    /// `ln_f`'s output `(B, T, C)` for ids `(B, T)`.
    pub(crate) fn last_hidden(&self, ids: &Tensor) -> Result<Tensor> {
        self.model.hidden(ids, None)
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

    /// `config.json`'s `eos_token_id` (50256 in GPT-2's files), when it has one.
    pub fn eos_token_id(&self) -> Option<i64> {
        self.raw_config.get("eos_token_id")?.as_i64()
    }

    /// Gradient checkpointing of the blocks on or off (as transformers'
    /// `gradient_checkpointing_enable`): activations are recomputed in the backward, the
    /// gradients unchanged bit for bit.
    pub fn gradient_checkpointing(&self, on: bool) {
        self.model.checkpointing.set(on);
    }

    /// HF's causal-LM loss: logits at position t predict `labels[t + 1]`; -100 is ignored.
    /// The tied head and the loss are one fused op (no `(B, T, V)` logits).
    pub fn loss(&self, ids: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let hidden = |ids: &Tensor| self.model.hidden(ids, None); // (B, T, C), after ln_f
        crate::shifted_head_loss("Gpt2::loss", ids, labels, hidden, &self.model.wte.weight)
    }
}

impl CausalLm for Gpt2 {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.model.blocks.len()]
    }

    fn max_positions(&self) -> usize {
        self.cfg.n_positions
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        self.model.forward(ids, Some(cache))
    }

    fn forward_last(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        self.model.forward_last(ids, Some(cache))
    }
}
