//! LlamaForCausalLM: Llama 2/3, Mistral, Qwen2 (q/k/v biases), SmolLM.

use std::path::Path;

use ember_core::{DType, Device, Result, Tensor};
use ember_nn::{
    AttentionConfig, Embedding, KvCache, Linear, LoadOptions, Module, RmsNorm, TransformerBlock,
    VarBuilder, VarStore, build_checked,
};

use crate::{CausalLm, LlamaConfig};

mod gguf;

/// A Llama-family causal LM with Hugging Face's parameter names (`model.embed_tokens`,
/// `model.layers.{i}.self_attn.q_proj`, ..., `model.norm`, `lm_head`).
pub struct Llama {
    /// The parameters.
    pub store: VarStore,
    /// The configuration it was built from.
    pub cfg: LlamaConfig,
    raw_config: serde_json::Value,
    embed: Embedding,
    layers: Vec<TransformerBlock>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
}

impl Llama {
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
    pub fn new(cfg: LlamaConfig, device: Device, dtype: DType, seed: u64) -> Result<Llama> {
        cfg.validate()?;
        let raw = written_config(&cfg);
        let store = VarStore::with_seed(device, dtype, seed);
        build_checked(store, |store| Llama::build(&cfg, raw.clone(), store))
    }

    /// Creates the parameters in `store` (initialized, planned or read, as the store does).
    fn build(cfg: &LlamaConfig, raw_config: serde_json::Value, store: VarStore) -> Result<Llama> {
        let vb = VarBuilder::new(&store);
        let m = vb.pp("model");
        let attn = AttentionConfig {
            dim: cfg.hidden_size,
            n_heads: cfg.num_attention_heads,
            n_kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            qkv_bias: cfg.qkv_bias(),
            o_bias: cfg.attention_bias,
            causal: true,
            rope: Some((cfg.rope_theta(), cfg.max_position_embeddings)),
        };
        let embed = Embedding::new(m.pp("embed_tokens"), cfg.vocab_size, cfg.hidden_size)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                TransformerBlock::new(
                    m.pp("layers").pp(i),
                    attn.clone(),
                    cfg.intermediate_size,
                    cfg.rms_norm_eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(m.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                vb.pp("lm_head"),
                cfg.hidden_size,
                cfg.vocab_size,
                false,
            )?)
        };
        drop(vb);
        Ok(Llama {
            store,
            cfg: cfg.clone(),
            raw_config,
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Loads `dir/config.json` and the safetensors weights (single or sharded), strictly:
    /// the config is validated and every parameter it implies is checked against the
    /// checkpoint's index (name and shape; the first disagreement is the error) before any
    /// is allocated; each is then read straight from the file.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Llama> {
        let dir = dir.as_ref();
        // config.json is read once: parsed for the model, kept to write back.
        let raw = crate::read_config(dir)?;
        crate::expect_model_type(
            dir,
            &raw,
            "Llama::from_pretrained",
            &["llama", "mistral", "qwen2"],
        )?;
        let cfg = LlamaConfig::from_value(dir, &raw)?;
        let mut opts = LoadOptions {
            ignore: vec!["*.rotary_emb.inv_freq".into()],
            ..Default::default()
        };
        if cfg.tie_word_embeddings {
            opts.ignore.push("lm_head.weight".into());
        }
        crate::build_from_dir(
            dir,
            &opts,
            device,
            dtype,
            |store| Llama::build(&cfg, raw.clone(), store),
            |m| &m.store,
        )
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
}

/// The `config.json` written for a model built from a typed config.
fn written_config(cfg: &LlamaConfig) -> serde_json::Value {
    serde_json::json!({
        "model_type": cfg.model_type.clone().unwrap_or_else(|| "llama".into()),
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.kv_heads(),
        "head_dim": cfg.head_dim(), "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta(),
        "tie_word_embeddings": cfg.tie_word_embeddings, "attention_bias": cfg.attention_bias,
        "hidden_act": cfg.hidden_act,
        "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
    })
}

impl CausalLm for Llama {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.layers.len()]
    }

    fn max_positions(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        let mut h = self.embed.forward(ids)?; // (B, T, C)
        for (layer, c) in self.layers.iter().zip(cache.iter_mut()) {
            h = layer.forward_with(&h, None, Some(c))?;
        }
        let h = self.norm.forward(&h)?;
        match &self.lm_head {
            Some(head) => head.forward(&h),
            None => ember_nn::linear_with(&h, &self.embed.weight, None),
        }
    }
}
