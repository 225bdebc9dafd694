//! Llama from and to GGUF files: llama.cpp's metadata and tensor names, its rotary row
//! order for Q and K, quantized tensors kept in their blocks.

use std::collections::BTreeMap;
use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{QuantizedWeight, WeightSource, build_from};
use ember_weights::{GgufFile, GgufTensorData, GgufTensors, GgufValue, save_gguf};

use super::{Llama, written_config};
use crate::LlamaConfig;

impl Llama {
    /// Builds a Llama from a GGUF file (`general.architecture = llama`): metadata becomes the
    /// config (checked as `config.json` is), tensors are renamed to Hugging Face's names, and
    /// the Q/K rows that llama.cpp permutes for its rotary layout are put back in HF order. A
    /// missing `output.weight` means tied embeddings. As [`Llama::from_pretrained`], every
    /// shape is checked before anything is allocated.
    ///
    /// Quantized tensors stay in their block formats (products by integer dot products,
    /// embeddings looked up from the blocks; those parameters are frozen); the others (norms,
    /// float tensors) are read as `dtype`. [`Llama::from_gguf_dequantized`] converts all.
    pub fn from_gguf(g: &GgufFile, device: Device, dtype: DType) -> Result<Llama> {
        Llama::from_gguf_with(g, device, dtype, true)
    }

    /// [`Llama::from_gguf`] with every tensor dequantized to `dtype` (to train all of them).
    pub fn from_gguf_dequantized(g: &GgufFile, device: Device, dtype: DType) -> Result<Llama> {
        Llama::from_gguf_with(g, device, dtype, false)
    }

    /// Writes the model as a GGUF file that llama.cpp runs: `llama.*` metadata from the
    /// config, llama.cpp's tensor names, Q and K rows in its rotary order, quantized
    /// parameters in their block formats and the others as F32. llama.cpp needs the
    /// vocabulary: `tokenizer` copies every `tokenizer.*` entry of a GGUF file (the one the
    /// model came from); without one the file loads in Ember only. Written atomically.
    pub fn save_gguf(&self, path: impl AsRef<Path>, tokenizer: Option<&GgufFile>) -> Result<()> {
        let cfg = &self.cfg;
        let u32v = |n: usize| -> Result<GgufValue> {
            u32::try_from(n).map(GgufValue::U32).map_err(|_| {
                Error::data("Llama::save_gguf", format!("{n} does not fit GGUF's u32"))
            })
        };
        let mut meta: Vec<(String, GgufValue)> = vec![
            (
                "general.architecture".into(),
                GgufValue::String("llama".into()),
            ),
            ("general.name".into(), GgufValue::String("ember".into())),
            ("llama.vocab_size".into(), u32v(cfg.vocab_size)?),
            (
                "llama.context_length".into(),
                u32v(cfg.max_position_embeddings)?,
            ),
            ("llama.embedding_length".into(), u32v(cfg.hidden_size)?),
            ("llama.block_count".into(), u32v(cfg.num_hidden_layers)?),
            (
                "llama.feed_forward_length".into(),
                u32v(cfg.intermediate_size)?,
            ),
            (
                "llama.attention.head_count".into(),
                u32v(cfg.num_attention_heads)?,
            ),
            (
                "llama.attention.head_count_kv".into(),
                u32v(cfg.kv_heads())?,
            ),
            ("llama.rope.dimension_count".into(), u32v(cfg.head_dim())?),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                GgufValue::F32(cfg.rms_norm_eps as f32),
            ),
            (
                "llama.rope.freq_base".into(),
                GgufValue::F32(cfg.rope_theta() as f32),
            ),
        ];
        if let Some(t) = tokenizer {
            for (k, v) in &t.metadata {
                if k.starts_with("tokenizer.") {
                    meta.push((k.clone(), v.clone()));
                }
            }
        }
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        let mut tensors = Vec::new();
        for (name, p) in self.store.named_parameters() {
            let Some(gname) = gguf_name(&name) else {
                return Err(Error::data(
                    "Llama::save_gguf",
                    format!("parameter {name} has no llama.cpp name"),
                ));
            };
            let rotary = if gname.ends_with("attn_q.weight") {
                Some(heads)
            } else if gname.ends_with("attn_k.weight") {
                Some(kv_heads)
            } else {
                None
            };
            let data = match (p.quantized(), rotary) {
                (Some(q), Some(h)) => {
                    GgufTensorData::Quantized(q.q.select_rows(&permuted_rows(q.q.dims()[0], h))?)
                }
                (Some(q), None) => GgufTensorData::Quantized(q.q),
                (None, Some(h)) => {
                    let w = p.tensor().detach();
                    GgufTensorData::Dense(select_rows(&w, &permuted_rows(w.dims()[0], h))?)
                }
                (None, None) => GgufTensorData::Dense(p.tensor().detach()),
            };
            tensors.push((gname, data));
        }
        save_gguf(path, &meta, &tensors)
    }

    fn from_gguf_with(g: &GgufFile, device: Device, dtype: DType, keep: bool) -> Result<Llama> {
        let cfg = gguf_config(g)?;
        let mut source = GgufSource::new(g, &cfg)?;
        source.keep_quantized = keep;
        let raw = written_config(&cfg);
        build_from(
            Box::new(source),
            device,
            dtype,
            |store| Llama::build(&cfg, raw.clone(), store),
            |m| &m.store,
        )
    }
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
    keep_quantized: bool,
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
            keep_quantized: false,
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
            select_rows(&t, &unpermuted_rows(t.dims()[0], self.heads))?
        } else if gguf.ends_with("attn_k.weight") {
            select_rows(&t, &unpermuted_rows(t.dims()[0], self.kv_heads))?
        } else {
            t
        };
        t.to_dtype(dtype)?.to_device(device)
    }

    fn load_quantized(&self, name: &str) -> Result<Option<QuantizedWeight>> {
        let Some((gguf, _)) = self.names.get(name).filter(|_| self.keep_quantized) else {
            return Ok(None);
        };
        let Some(q) = self.data.load_quantized(gguf)? else {
            return Ok(None);
        };
        let q = if gguf.ends_with("attn_q.weight") {
            q.select_rows(&unpermuted_rows(q.dims()[0], self.heads))?
        } else if gguf.ends_with("attn_k.weight") {
            q.select_rows(&unpermuted_rows(q.dims()[0], self.kv_heads))?
        } else {
            q
        };
        Ok(Some(QuantizedWeight {
            q,
            transposed: false,
        }))
    }

    fn describe(&self) -> String {
        self.data.path().display().to_string()
    }
}

/// Rows `rows` of a dense weight `[out, in]` (the Q/K row maps below, as the blocks of a
/// quantized weight are moved by `QTensor::select_rows`).
fn select_rows(w: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    w.index_select(0, &Tensor::from_vec(idx, &[rows.len()], w.device())?)
}

/// For each row of llama.cpp's rotary layout, the row of HF's holding it (the inverse of
/// [`unpermuted_rows`]).
fn permuted_rows(out: usize, heads: usize) -> Vec<usize> {
    let per_head = out / heads.max(1);
    let half = (per_head / 2).max(1);
    (0..out)
        .map(|r| {
            let (h, within) = (r / per_head, r % per_head);
            let (i, j) = (within / 2, within % 2);
            h * per_head + j * half + i
        })
        .collect()
}

/// For each row of HF's Q/K layout, the row of llama.cpp's rotary-permuted layout holding it
/// (rows only move: quantized blocks are copied as they are).
fn unpermuted_rows(out: usize, heads: usize) -> Vec<usize> {
    let per_head = out / heads.max(1);
    let half = per_head / 2;
    (0..out)
        .map(|r| {
            let (h, within) = (r / per_head, r % per_head);
            let (j, i) = (within / half.max(1), within % half.max(1));
            h * per_head + 2 * i + j
        })
        .collect()
}

/// llama.cpp's names of a block's tensors and Hugging Face's, under `blk.{i}.` and
/// `model.layers.{i}.`.
const BLOCK_NAMES: [(&str, &str); 9] = [
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// The other tensors: (llama.cpp, Hugging Face).
const TOP_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// llama.cpp's tensor names to Hugging Face's.
fn hf_name(gguf: &str) -> Option<String> {
    if let Some((_, hf)) = TOP_NAMES.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let (i, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let (_, hf) = BLOCK_NAMES.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{i}.{hf}"))
}

/// Hugging Face's tensor names to llama.cpp's.
fn gguf_name(hf: &str) -> Option<String> {
    if let Some((g, _)) = TOP_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (i, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let (g, _) = BLOCK_NAMES.iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{i}.{g}"))
}
