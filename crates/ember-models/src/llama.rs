//! LlamaForCausalLM: Llama 2/3, Mistral, Qwen2 (q/k/v biases), SmolLM.

use std::path::Path;

use ember_core::Error;
use ember_core::{DType, Device, Result, Tensor};
use ember_nn::{
    AttentionConfig, Embedding, KvCache, Linear, LoadOptions, Module, RmsNorm, TransformerBlock,
    VarBuilder, VarStore,
};
use ember_weights::{Checkpoint, GgufFile, GgufValue};

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
        // config.json is read once: parsed for the model, kept to write back.
        let raw = crate::read_config(dir)?;
        let mut model = Llama::new(LlamaConfig::from_value(dir, &raw)?, device, dtype, 0)?;
        model.raw_config = raw;
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

    /// Builds a Llama from a GGUF file (`general.architecture = llama`): metadata becomes the
    /// config, tensors are dequantized to `dtype`, renamed to Hugging Face's names, and the Q/K
    /// rows that llama.cpp permutes for its rotary layout are put back in HF order. A missing
    /// `output.weight` means tied embeddings.
    pub fn from_gguf(g: &GgufFile, device: Device, dtype: DType) -> Result<Llama> {
        let bad = |what: String| Error::data("Llama::from_gguf", what);
        let arch = g
            .metadata
            .get("general.architecture")
            .and_then(GgufValue::as_str)
            .unwrap_or("");
        if arch != "llama" {
            return Err(bad(format!("architecture {arch:?} is not llama")));
        }
        let num = |key: &str| -> Result<f64> {
            g.metadata
                .get(&format!("llama.{key}"))
                .and_then(GgufValue::as_f64)
                .ok_or_else(|| bad(format!("metadata llama.{key} is missing")))
        };
        let heads = num("attention.head_count")? as usize;
        let vocab = match g.metadata.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(t)) => t.len(),
            _ => num("vocab_size")? as usize,
        };
        let eos = g
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(GgufValue::as_u64);
        let cfg = LlamaConfig {
            model_type: Some("llama".into()),
            vocab_size: vocab,
            hidden_size: num("embedding_length")? as usize,
            intermediate_size: num("feed_forward_length")? as usize,
            num_hidden_layers: num("block_count")? as usize,
            num_attention_heads: heads,
            num_key_value_heads: Some(
                num("attention.head_count_kv").unwrap_or(heads as f64) as usize
            ),
            head_dim: None,
            max_position_embeddings: num("context_length")? as usize,
            rms_norm_eps: num("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: Some(num("rope.freq_base").unwrap_or(10000.0)),
            rope_parameters: None,
            rope_scaling: None,
            tie_word_embeddings: g.info("output.weight").is_none(),
            attention_bias: false,
            hidden_act: "silu".into(),
            bos_token_id: g
                .metadata
                .get("tokenizer.ggml.bos_token_id")
                .and_then(GgufValue::as_u64)
                .map(|v| v as i64),
            eos_token_id: eos.map(|v| serde_json::Value::from(v as i64)),
        };
        let kv_heads = cfg.kv_heads();
        let model = Llama::new(cfg, device, dtype, 0)?;
        let mut loaded = 0;
        for info in &g.tensors {
            let Some(name) = hf_name(&info.name) else {
                return Err(bad(format!("unexpected GGUF tensor {}", info.name)));
            };
            let p = model
                .store
                .get(&name)
                .ok_or_else(|| bad(format!("no parameter {name} for {}", info.name)))?;
            let mut t = g.load(&info.name, Device::Cpu, DType::F32)?;
            if info.name.ends_with("attn_q.weight") {
                t = unpermute(&t, heads)?;
            } else if info.name.ends_with("attn_k.weight") {
                t = unpermute(&t, kv_heads)?;
            }
            p.set(&t)?;
            loaded += 1;
        }
        let expected = model.store.names().len();
        if loaded != expected {
            return Err(bad(format!(
                "{loaded} GGUF tensors for {expected} parameters"
            )));
        }
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

/// llama.cpp's tensor names to Hugging Face's.
fn hf_name(gguf: &str) -> Option<String> {
    Some(match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = gguf.strip_prefix("blk.")?;
            let (i, part) = rest.split_once('.')?;
            let hf = match part {
                "attn_norm.weight" => "input_layernorm.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                _ => return None,
            };
            format!("model.layers.{i}.{hf}")
        }
    })
}

/// Undoes llama.cpp's rotary row permutation of a Q or K weight `[out, in]`.
fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = (w.dims()[0], w.dims()[1]);
    w.reshape_to(&[heads, out / heads / 2, 2, inp])?
        .transpose(1, 2)?
        .reshape_to(&[out, inp])
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
