//! LlamaForCausalLM: Llama 2/3, Mistral, Qwen2 (q/k/v biases), SmolLM.

use std::path::Path;

use ember_nn::{
    AttentionConfig, Embedding, KvCache, Linear, LoadOptions, Module, RmsNorm, TransformerBlock,
    VarBuilder, VarStore,
};
use ember_tensor::{DType, Device, Result, Tensor};
use ember_weights::Checkpoint;

use crate::{CausalLm, LlamaConfig};

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
    /// A randomly initialized model for `cfg` (init seed `seed`).
    pub fn new(cfg: LlamaConfig, device: Device, dtype: DType, seed: u64) -> Result<Llama> {
        let store = VarStore::with_seed(device, dtype, seed);
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
        let raw_config = serde_json::json!({
            "model_type": cfg.model_type.clone().unwrap_or_else(|| "llama".into()),
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.kv_heads(),
            "head_dim": cfg.head_dim(), "max_position_embeddings": cfg.max_position_embeddings,
            "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta(),
            "tie_word_embeddings": cfg.tie_word_embeddings, "attention_bias": cfg.attention_bias,
            "hidden_act": cfg.hidden_act,
        });
        Ok(Llama {
            store,
            cfg,
            raw_config,
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Loads `dir/config.json` and the safetensors weights (single or sharded), strictly.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Llama> {
        let dir = dir.as_ref();
        let cfg = LlamaConfig::from_file(&dir.join("config.json"))?;
        let mut model = Llama::new(cfg, device, dtype, 0)?;
        model.raw_config = crate::read_config(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let mut opts = LoadOptions {
            ignore: vec!["*.rotary_emb.inv_freq".into()],
            ..Default::default()
        };
        if model.cfg.tie_word_embeddings {
            opts.ignore.push("lm_head.weight".into());
        }
        model.store.load(&ckpt, &opts)?;
        Ok(model)
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

impl CausalLm for Llama {
    fn new_cache(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.layers.len()]
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        let mut h = self.embed.forward(ids)?; // (B, T, C)
        for (layer, c) in self.layers.iter().zip(cache.iter_mut()) {
            h = layer.forward_with(&h, None, Some(c))?;
        }
        let h = self.norm.forward(&h)?;
        match &self.lm_head {
            Some(head) => head.forward(&h),
            None => h.matmul(&self.embed.weight.tensor().transpose(0, 1)?),
        }
    }
}
