//! LlamaForCausalLM: Llama 2/3, Mistral, Qwen2 (q/k/v biases), SmolLM.

use std::collections::BTreeMap;
use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{
    AttentionConfig, Embedding, KvCache, Linear, LoadOptions, Module, RmsNorm, TransformerBlock,
    VarBuilder, VarStore, WeightSource, build_checked, build_from,
};
use ember_weights::{GgufFile, GgufTensors, GgufValue};

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

    /// Builds a Llama from a GGUF file (`general.architecture = llama`): metadata becomes the
    /// config (checked as `config.json` is), tensors are dequantized to `dtype`, renamed to
    /// Hugging Face's names, and the Q/K rows that llama.cpp permutes for its rotary layout
    /// are put back in HF order. A missing `output.weight` means tied embeddings. As
    /// [`Llama::from_pretrained`], every shape is checked before anything is allocated.
    pub fn from_gguf(g: &GgufFile, device: Device, dtype: DType) -> Result<Llama> {
        let cfg = gguf_config(g)?;
        let source = GgufSource::new(g, &cfg)?;
        let raw = written_config(&cfg);
        build_from(
            Box::new(source),
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

/// A GGUF file's `llama.*` metadata as a config, every integer checked to fit.
fn gguf_config(g: &GgufFile) -> Result<LlamaConfig> {
    let bad = |what: String| {
        Error::data(
            "Llama::from_gguf",
            format!("{}: {what}", g.path().display()),
        )
    };
    let arch = g
        .metadata
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("");
    if arch != "llama" {
        return Err(bad(format!("architecture {arch:?} is not llama")));
    }
    let value = |key: &str| g.metadata.get(&format!("llama.{key}"));
    let int = |key: &str| -> Result<Option<usize>> {
        match value(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(format!("metadata llama.{key} = {v:?} is not a size"))),
        }
    };
    let need = |key: &str| int(key)?.ok_or_else(|| bad(format!("metadata llama.{key} is missing")));
    let float = |key: &str| value(key).and_then(GgufValue::as_f64);
    let heads = need("attention.head_count")?;
    let vocab = match g.metadata.get("tokenizer.ggml.tokens") {
        Some(GgufValue::Array(t)) => t.len(),
        _ => need("vocab_size")?,
    };
    let token = |key: &str| {
        g.metadata
            .get(&format!("tokenizer.ggml.{key}"))
            .and_then(GgufValue::as_u64)
            .and_then(|v| i64::try_from(v).ok())
    };
    let cfg = LlamaConfig {
        model_type: Some("llama".into()),
        vocab_size: vocab,
        hidden_size: need("embedding_length")?,
        intermediate_size: need("feed_forward_length")?,
        num_hidden_layers: need("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(int("attention.head_count_kv")?.unwrap_or(heads)),
        head_dim: None,
        max_position_embeddings: need("context_length")?,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(float("rope.freq_base").unwrap_or(10000.0)),
        rope_parameters: None,
        rope_scaling: None,
        tie_word_embeddings: g.info("output.weight").is_none(),
        attention_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: token("bos_token_id"),
        eos_token_id: token("eos_token_id").map(serde_json::Value::from),
    };
    cfg.check().map_err(bad)?;
    Ok(cfg)
}

/// A GGUF file's tensors under Hugging Face's names, Q/K rows un-permuted as they are read.
struct GgufSource {
    data: GgufTensors,
    /// HF name → (GGUF name, shape).
    names: BTreeMap<String, (String, Vec<usize>)>,
    heads: usize,
    kv_heads: usize,
}

impl GgufSource {
    fn new(g: &GgufFile, cfg: &LlamaConfig) -> Result<GgufSource> {
        let data = g.tensor_data();
        let mut names = BTreeMap::new();
        for info in &data.tensors {
            let Some(hf) = hf_name(&info.name) else {
                return Err(Error::data(
                    "Llama::from_gguf",
                    format!(
                        "{}: unexpected tensor {} (not part of a llama model)",
                        data.path().display(),
                        info.name
                    ),
                ));
            };
            names.insert(hf, (info.name.clone(), info.shape.clone()));
        }
        Ok(GgufSource {
            data,
            names,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
        })
    }
}

impl WeightSource for GgufSource {
    fn index(&self) -> Vec<(String, Vec<usize>)> {
        self.names
            .iter()
            .map(|(hf, (_, shape))| (hf.clone(), shape.clone()))
            .collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.names.get(name).map(|(_, s)| s.clone())
    }

    fn load(&self, name: &str, device: Device, dtype: DType) -> Result<Tensor> {
        let Some((gguf, _)) = self.names.get(name) else {
            return Err(Error::internal(
                "GgufSource::load",
                format!("{name} is not in the index"),
            ));
        };
        let t = self.data.load(gguf, Device::Cpu, DType::F32)?;
        let t = if gguf.ends_with("attn_q.weight") {
            unpermute(&t, self.heads)?
        } else if gguf.ends_with("attn_k.weight") {
            unpermute(&t, self.kv_heads)?
        } else {
            t
        };
        t.to_dtype(dtype)?.to_device(device)
    }

    fn describe(&self) -> String {
        self.data.path().display().to_string()
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
            None => h.matmul(&self.embed.weight.tensor().transpose(0, 1)?),
        }
    }
}
