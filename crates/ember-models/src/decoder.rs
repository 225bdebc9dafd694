//! The decoder family in one model: Llama 2/3 and SmolLM, Mistral, Qwen2, Qwen3, Gemma 3
//! (text) and Phi-3, told apart by `model_type` (see [`Arch`]).

use std::path::Path;

use ember_core::{DType, Device, Result, Tensor};
use ember_nn::{
    Embedding, KvCache, Linear, LoadOptions, Module, RmsNorm, VarBuilder, VarStore, build_checked,
};

use crate::config::Arch;
use crate::{CausalLm, DecoderConfig};

mod gguf;
mod layer;

pub use layer::{DecoderLayer, DecoderMlp};

/// A decoder-only causal LM with Hugging Face's parameter names (`model.embed_tokens`,
/// `model.layers.{i}.self_attn.q_proj`, ..., `model.norm`, `lm_head`), for every
/// architecture of [`Arch`]: `from_pretrained` reads `model_type`, `from_gguf`
/// `general.architecture`.
///
/// ```no_run
/// use ember_core::{DType, Device};
/// use ember_models::DecoderLm;
/// let model = DecoderLm::from_pretrained("path/to/qwen3", Device::Cpu, DType::F32)?;
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct DecoderLm {
    /// The parameters.
    pub store: VarStore,
    /// The configuration it was built from.
    pub cfg: DecoderConfig,
    /// The architecture.
    pub arch: Arch,
    raw_config: serde_json::Value,
    embed: Embedding,
    /// Gemma 3 multiplies the embeddings by √hidden.
    embed_scale: Option<f64>,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    checkpointing: ember_nn::Checkpointing,
}

/// The Llama family's model: the decoder model (it runs every architecture of [`Arch`]).
pub type Llama = DecoderLm;

impl DecoderLm {
    /// Training mode (dropout active), as `model.train()`; the same as `store.train()`.
    pub fn train(&self) {
        self.store.train();
    }

    /// Eval mode (dropout off), as `model.eval()`; the same as `store.eval()`.
    pub fn eval(&self) {
        self.store.eval();
    }

    /// A randomly initialized model for `cfg` (init seed `seed`); the config is validated
    /// and the total size checked against the device's memory before anything is allocated.
    pub fn new(cfg: DecoderConfig, device: Device, dtype: DType, seed: u64) -> Result<DecoderLm> {
        cfg.validate()?;
        let raw = written_config(&cfg);
        let store = VarStore::with_seed(device, dtype, seed);
        build_checked(store, |store| DecoderLm::build(&cfg, raw.clone(), store))
    }

    /// Creates the parameters in `store` (initialized, planned or read, as the store does).
    fn build(
        cfg: &DecoderConfig,
        raw_config: serde_json::Value,
        store: VarStore,
    ) -> Result<DecoderLm> {
        let arch = cfg
            .arch()
            .map_err(|m| ember_core::Error::data("DecoderLm", m))?;
        let vb = VarBuilder::new(&store);
        let m = vb.pp("model");
        let embed = Embedding::new(m.pp("embed_tokens"), cfg.vocab_size, cfg.hidden_size)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(m.pp("layers").pp(i), cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let (dim, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let norm = if arch == Arch::Gemma3 {
            RmsNorm::with_unit_offset(m.pp("norm"), dim, eps)?
        } else {
            RmsNorm::new(m.pp("norm"), dim, eps)?
        };
        let lm_head = if cfg.tied() {
            None
        } else {
            Some(Linear::new(vb.pp("lm_head"), dim, cfg.vocab_size, false)?)
        };
        drop(vb);
        Ok(DecoderLm {
            store,
            cfg: cfg.clone(),
            arch,
            raw_config,
            embed,
            embed_scale: (arch == Arch::Gemma3).then(|| (dim as f64).sqrt()),
            layers,
            norm,
            lm_head,
            checkpointing: Default::default(),
        })
    }

    /// Loads `dir/config.json` and the safetensors weights (single or sharded), strictly:
    /// the config is validated and every parameter it implies is checked against the
    /// checkpoint's index (name and shape; the first disagreement is the error) before any
    /// is allocated; each is then read straight from the file.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: Device,
        dtype: DType,
    ) -> Result<DecoderLm> {
        let dir = dir.as_ref();
        // config.json is read once: parsed for the model, kept to write back.
        let raw = crate::read_config(dir)?;
        DecoderLm::load(dir, &raw, device, dtype, false)
    }

    /// The transformer of a task-head checkpoint (`model.*`, the head's names ignored): no
    /// language-model head is built; `raw` is the directory's config.json.
    pub(crate) fn load_body(
        dir: &Path,
        raw: &serde_json::Value,
        device: Device,
        dtype: DType,
    ) -> Result<DecoderLm> {
        DecoderLm::load(dir, raw, device, dtype, true)
    }

    /// The model of `dir` with config `raw`; `body_only` leaves the language-model head out
    /// (the embedding table stands in for it) and ignores a task head's `score.*`.
    fn load(
        dir: &Path,
        raw: &serde_json::Value,
        device: Device,
        dtype: DType,
        body_only: bool,
    ) -> Result<DecoderLm> {
        let types = Arch::ALL.map(Arch::model_type);
        crate::expect_model_type(dir, raw, "DecoderLm::from_pretrained", &types)?;
        let mut cfg = DecoderConfig::from_value(dir, raw)?;
        let mut ignore = vec!["*.rotary_emb.inv_freq".to_string()];
        if body_only {
            cfg.tie_word_embeddings = Some(true); // the embedding table, and no lm_head
            ignore.push("score.*".into());
        }
        if cfg.tied() {
            ignore.push("lm_head.weight".into());
        }
        let opts = LoadOptions {
            ignore,
            ..Default::default()
        };
        crate::build_from_dir(
            dir,
            &opts,
            device,
            dtype,
            |store| DecoderLm::build(&cfg, raw.clone(), store),
            |m| &m.store,
        )
    }

    /// The final norm's output `(B, T, C)` for ids `(B, T)` (no cache).
    pub(crate) fn last_hidden(&self, ids: &Tensor) -> Result<Tensor> {
        self.norm.forward(&self.hidden(ids, &mut self.new_cache())?)
    }

    /// Writes `config.json` and `model.safetensors` (HF names) so transformers loads it back.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::save_dir(dir.as_ref(), &self.raw_config, &self.store)
    }

    /// Logits `(B, T, V)` for ids `(B, T)` (no cache).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut cache = self.new_cache();
        self.forward_cached(ids, &mut cache)
    }

    /// Gradient checkpointing of the layers on or off (as transformers'
    /// `gradient_checkpointing_enable`): a training forward (recording gradients, from an
    /// empty cache) frees each layer's activations and the backward recomputes them; the
    /// gradients are unchanged bit for bit.
    pub fn gradient_checkpointing(&self, on: bool) {
        self.checkpointing.set(on);
    }

    /// HF's causal-LM loss: logits at position t predict `labels[t + 1]`; -100 is ignored.
    /// The head and the loss are one fused op (no `(B, T, V)` logits) unless the logits are
    /// soft-capped (Gemma 2 style).
    pub fn loss(&self, ids: &Tensor, labels: &Tensor) -> Result<Tensor> {
        const OP: &str = "DecoderLm::loss";
        if self.cfg.final_logit_softcapping.is_some() {
            return crate::shifted_loss(OP, ids, labels, |ids| self.forward(ids));
        }
        let hidden = |ids: &Tensor| self.norm.forward(&self.hidden(ids, &mut self.new_cache())?);
        crate::shifted_head_loss(OP, ids, labels, hidden, self.head_weight())
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }
}

/// The `config.json` written for a model built from a typed config (or from GGUF metadata).
fn written_config(cfg: &DecoderConfig) -> serde_json::Value {
    let arch = cfg.arch().unwrap_or(Arch::Llama);
    let mut v = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("model_type".into(), arch.model_type().into());
        m.insert("architectures".into(), serde_json::json!([arch.hf_class()]));
        m.insert("num_key_value_heads".into(), cfg.kv_heads().into());
        m.insert("head_dim".into(), cfg.head_dim().into());
        m.insert("tie_word_embeddings".into(), cfg.tied().into());
        // explicit, so transformers' per-class default (Phi-3: 32000) does not apply
        m.insert("pad_token_id".into(), cfg.pad_token_id.into());
        m.insert("bos_token_id".into(), cfg.bos_token_id.into());
        m.insert("eos_token_id".into(), cfg.eos_token_id.clone().into());
        if cfg.rope_parameters.is_none() && cfg.rope_theta.is_none() {
            m.insert("rope_theta".into(), cfg.rope_theta().into());
        }
    }
    v
}

impl CausalLm for DecoderLm {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.layers.len()]
    }

    fn max_positions(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        let h = self.hidden(ids, cache)?;
        self.head(&h)
    }

    fn forward_last(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        let h = self.hidden(ids, cache)?; // (B, T, C)
        let t = h.dims()[1];
        self.head(&h.narrow(1, t - 1, 1)?)
    }
}

impl DecoderLm {
    /// The last layer's output `(B, T, C)` after the cached positions.
    fn hidden(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        let mut h = self.embed.forward(ids)?; // (B, T, C)
        if let Some(s) = self.embed_scale {
            h = h.mul_scalar(s)?;
        }
        for (layer, c) in self.layers.iter().zip(cache.iter_mut()) {
            h = if self.checkpointing.applies() && c.is_empty() {
                // The cache stays empty: a checkpointed forward is a training forward.
                let layer = layer.clone();
                let f = move |x: &Tensor| layer.forward_with(x, None, &mut KvCache::new());
                ember_core::checkpoint(f, &h)?
            } else {
                layer.forward_with(&h, None, c)?
            };
        }
        Ok(h)
    }

    /// The head's `(V, C)` weight: `lm_head`'s (no bias), or the token table when tied.
    fn head_weight(&self) -> &ember_nn::Param {
        self.lm_head
            .as_ref()
            .map_or(&self.embed.weight, |l| &l.weight)
    }

    /// The final norm, the head and soft-capping: logits `(B, T, V)` of hidden states.
    fn head(&self, h: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(h)?;
        let logits = ember_nn::linear_with(&h, self.head_weight(), None)?; // (B, T, V)
        match self.cfg.final_logit_softcapping {
            Some(cap) => logits.div_scalar(cap)?.tanh()?.mul_scalar(cap),
            None => Ok(logits),
        }
    }
}
