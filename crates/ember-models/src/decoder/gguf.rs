//! Decoders from and to GGUF files: llama.cpp's metadata and tensor names per architecture,
//! its rotary row order for Llama's Q and K, Gemma's norms stored as `1 + w`, quantized
//! tensors kept in their blocks.

use std::collections::BTreeMap;
use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{QuantizedWeight, WeightSource, build_from};
use ember_weights::{GgufFile, GgufTensorData, GgufTensors, GgufValue, save_gguf};

use super::{DecoderLm, written_config};
use crate::DecoderConfig;
use crate::config::Arch;

impl DecoderLm {
    /// Builds a model from a GGUF file (`general.architecture` `llama`, `qwen2`, `qwen3`,
    /// `gemma3` or `phi3`): metadata becomes the config (checked as `config.json` is), tensors
    /// are renamed to Hugging Face's names, the Q/K rows that llama.cpp permutes for Llama's
    /// rotary layout are put back in HF order and Gemma's norms (stored as `1 + w`) are
    /// un-offset. A missing `output.weight` means tied embeddings. As
    /// [`DecoderLm::from_pretrained`], every shape is checked before anything is allocated.
    ///
    /// Quantized tensors stay in their block formats (products by integer dot products,
    /// embeddings looked up from the blocks; those parameters are frozen); the others (norms,
    /// float tensors) are read as `dtype`. [`DecoderLm::from_gguf_dequantized`] converts all.
    pub fn from_gguf(g: &GgufFile, device: Device, dtype: DType) -> Result<DecoderLm> {
        DecoderLm::from_gguf_with(g, device, dtype, true)
    }

    /// [`DecoderLm::from_gguf`] with every tensor dequantized to `dtype` (to train all of
    /// them).
    pub fn from_gguf_dequantized(g: &GgufFile, device: Device, dtype: DType) -> Result<DecoderLm> {
        DecoderLm::from_gguf_with(g, device, dtype, false)
    }

    /// Writes the model as a GGUF file: `{arch}.*` metadata from the config, llama.cpp's
    /// tensor names, Llama's Q and K rows in its rotary order, Gemma's norms as `1 + w`,
    /// quantized
    /// parameters in their block formats and the others as F32. llama.cpp needs the
    /// vocabulary: `tokenizer` copies every `tokenizer.*` entry of a GGUF file (the one the
    /// model came from); without one the file loads in Ember only. Written atomically.
    pub fn save_gguf(&self, path: impl AsRef<Path>, tokenizer: Option<&GgufFile>) -> Result<()> {
        let (cfg, arch) = (&self.cfg, self.arch);
        let u32v = |n: usize| -> Result<GgufValue> {
            u32::try_from(n).map(GgufValue::U32).map_err(|_| {
                Error::data(
                    "DecoderLm::save_gguf",
                    format!("{n} does not fit GGUF's u32"),
                )
            })
        };
        let a = arch.gguf_arch();
        let mut meta: Vec<(String, GgufValue)> = vec![
            ("general.architecture".into(), GgufValue::String(a.into())),
            ("general.name".into(), GgufValue::String("ember".into())),
        ];
        let window = (0..cfg.num_hidden_layers).find_map(|i| cfg.layer(i).ok()?.window);
        for (key, n) in [
            ("vocab_size", Some(cfg.vocab_size)),
            ("context_length", Some(cfg.max_position_embeddings)),
            ("embedding_length", Some(cfg.hidden_size)),
            ("block_count", Some(cfg.num_hidden_layers)),
            ("feed_forward_length", Some(cfg.intermediate_size)),
            ("attention.head_count", Some(cfg.num_attention_heads)),
            ("attention.head_count_kv", Some(cfg.kv_heads())),
            ("attention.key_length", Some(cfg.head_dim())),
            ("attention.value_length", Some(cfg.head_dim())),
            ("rope.dimension_count", Some(cfg.head_dim())),
            ("attention.sliding_window", window),
        ] {
            if let Some(n) = n {
                meta.push((format!("{a}.{key}"), u32v(n)?));
            }
        }
        meta.push((
            format!("{a}.attention.layer_norm_rms_epsilon"),
            GgufValue::F32(cfg.rms_norm_eps as f32),
        ));
        meta.push((
            format!("{a}.rope.freq_base"),
            GgufValue::F32(cfg.rope_theta() as f32),
        ));
        if arch == Arch::Gemma3 {
            meta.extend(gemma_meta(cfg)?);
        }
        if let Some(cap) = cfg.final_logit_softcapping {
            meta.push((
                format!("{a}.final_logit_softcapping"),
                GgufValue::F32(cap as f32),
            ));
        }
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
            let Some(gname) = gguf_name(arch, &name) else {
                return Err(Error::data(
                    "DecoderLm::save_gguf",
                    format!("parameter {name} has no llama.cpp name"),
                ));
            };
            let rotary = rotary_heads(arch, &gname, heads, kv_heads);
            let data = match (p.quantized(), rotary) {
                (Some(q), Some(h)) => {
                    GgufTensorData::Quantized(q.q.select_rows(&permuted_rows(q.q.dims()[0], h))?)
                }
                (Some(q), None) => GgufTensorData::Quantized(q.q),
                (None, Some(h)) => {
                    let w = p.tensor().detach();
                    GgufTensorData::Dense(select_rows(&w, &permuted_rows(w.dims()[0], h))?)
                }
                (None, None) if norm_offset(arch, &gname) => {
                    GgufTensorData::Dense(p.tensor().detach().add_scalar(1.0)?)
                }
                (None, None) => GgufTensorData::Dense(p.tensor().detach()),
            };
            tensors.push((gname, data));
        }
        save_gguf(path, &meta, &tensors)
    }

    fn from_gguf_with(g: &GgufFile, device: Device, dtype: DType, keep: bool) -> Result<DecoderLm> {
        let cfg = gguf_config(g)?;
        let mut source = GgufSource::new(g, &cfg)?;
        source.keep_quantized = keep;
        let raw = written_config(&cfg);
        let model = build_from(
            Box::new(source),
            device,
            dtype,
            |store| DecoderLm::build(&cfg, raw.clone(), store),
            |m| &m.store,
        )?;
        model.store.eval(); // as a pretrained model: dropout off until `train()`
        Ok(model)
    }
}

/// A GGUF file's `{arch}.*` metadata as a config, every integer checked to fit.
fn gguf_config(g: &GgufFile) -> Result<DecoderConfig> {
    let bad = |what: String| {
        Error::data(
            "DecoderLm::from_gguf",
            format!("{}: {what}", g.path().display()),
        )
    };
    let name = g
        .metadata
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("");
    let Some(arch) = Arch::from_gguf_arch(name) else {
        let known: Vec<&str> = Arch::ALL.map(Arch::gguf_arch).to_vec();
        return Err(bad(format!(
            "architecture {name:?} is not supported (supported: {})",
            crate::dedup_join(&known)
        )));
    };
    let value = |key: &str| g.metadata.get(&format!("{name}.{key}"));
    let int = |key: &str| -> Result<Option<usize>> {
        match value(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(format!("metadata {name}.{key} = {v:?} is not a size"))),
        }
    };
    let need =
        |key: &str| int(key)?.ok_or_else(|| bad(format!("metadata {name}.{key} is missing")));
    let float = |key: &str| value(key).and_then(GgufValue::as_f64);
    let heads = need("attention.head_count")?;
    let hidden = need("embedding_length")?;
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
    let head_dim = int("attention.key_length")?.or(hidden.checked_div(heads));
    let layers = need("block_count")?;
    let theta = float("rope.freq_base").unwrap_or(if arch == Arch::Gemma3 { 1e6 } else { 1e4 });
    let rotated = int("rope.dimension_count")?;
    let mut cfg = DecoderConfig {
        model_type: Some(arch.model_type().into()),
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: need("feed_forward_length")?,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: Some(int("attention.head_count_kv")?.unwrap_or(heads)),
        head_dim,
        max_position_embeddings: need("context_length")?,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(theta),
        rope_parameters: None,
        rope_scaling: None,
        rope_local_base_freq: None,
        partial_rotary_factor: match (rotated, head_dim) {
            (Some(r), Some(d)) if r != d && d > 0 => Some(r as f64 / d as f64),
            _ => None,
        },
        tie_word_embeddings: Some(g.info("output.weight").is_none()),
        attention_bias: false,
        hidden_act: None,
        hidden_activation: None,
        query_pre_attn_scalar: None,
        sliding_window: int("attention.sliding_window")?,
        use_sliding_window: None,
        max_window_layers: None,
        layer_types: None,
        sliding_window_pattern: None,
        final_logit_softcapping: float("final_logit_softcapping"),
        attn_logit_softcapping: float("attn_logit_softcapping"),
        bos_token_id: token("bos_token_id"),
        eos_token_id: token("eos_token_id").map(serde_json::Value::from),
        pad_token_id: token("padding_token_id"),
        attention_dropout: None,
        resid_pdrop: None,
    };
    if let Some(kind) = value("rope.scaling.type").and_then(GgufValue::as_str) {
        let factor = float("rope.scaling.factor").unwrap_or(1.0);
        cfg.rope_scaling = Some(serde_json::json!({"rope_type": kind, "factor": factor}));
    }
    match arch {
        Arch::Gemma3 => {
            // llama.cpp: every sixth layer global, local layers at base 10000, scores scaled
            // by the head width (unless the file says otherwise).
            let period = int("attention.sliding_window_pattern")?.unwrap_or(6).max(1);
            let local_theta = float("rope.freq_base_swa").unwrap_or(10000.0);
            cfg.hidden_activation = Some("gelu_pytorch_tanh".into());
            cfg.query_pre_attn_scalar =
                float("attention.query_pre_attn_scalar").or(head_dim.map(|d| d as f64));
            cfg.layer_types = Some(
                (0..layers.min(1 << 16))
                    .map(|i| {
                        if (i + 1).is_multiple_of(period) {
                            "full_attention".to_string()
                        } else {
                            "sliding_attention".to_string()
                        }
                    })
                    .collect(),
            );
            cfg.rope_theta = None;
            cfg.rope_parameters = Some(serde_json::json!({
                "full_attention": {"rope_type": "default", "rope_theta": theta},
                "sliding_attention": {"rope_type": "default", "rope_theta": local_theta},
            }));
        }
        Arch::Qwen2 | Arch::Qwen3 => {
            cfg.use_sliding_window = Some(false);
            cfg.sliding_window = None;
        }
        _ => {}
    }
    cfg.check().map_err(bad)?;
    Ok(cfg)
}

/// Gemma 3's metadata beyond the common keys: the period of global layers, the local rope
/// base and the score scale (read back by [`gguf_config`]).
fn gemma_meta(cfg: &DecoderConfig) -> Result<Vec<(String, GgufValue)>> {
    let bad = |m: String| Error::data("DecoderLm::save_gguf", m);
    let layers: Vec<_> = (0..cfg.num_hidden_layers)
        .map(|i| cfg.layer(i))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    let global = |i: usize| layers[i].window.is_none();
    let period = (1..=layers.len())
        .find(|&p| (0..layers.len()).all(|i| global(i) == (i + 1).is_multiple_of(p)))
        .or_else(|| {
            layers
                .iter()
                .all(|l| l.window.is_some())
                .then_some(layers.len() + 1)
        })
        .ok_or_else(|| bad("Gemma 3 layer types without a period of global layers".into()))?;
    let local = layers.iter().find(|l| l.window.is_some());
    let mut meta = vec![(
        "gemma3.attention.sliding_window_pattern".to_string(),
        GgufValue::U32(u32::try_from(period).map_err(|_| bad(format!("period {period}")))?),
    )];
    if let Some(l) = local {
        meta.push((
            "gemma3.rope.freq_base_swa".into(),
            GgufValue::F32(l.theta as f32),
        ));
    }
    if let Some(s) = cfg.query_pre_attn_scalar {
        meta.push((
            "gemma3.attention.query_pre_attn_scalar".into(),
            GgufValue::F32(s as f32),
        ));
    }
    Ok(meta)
}

/// A GGUF file's tensors under Hugging Face's names, Q/K rows un-permuted as they are read.
struct GgufSource {
    data: GgufTensors,
    /// HF name → (GGUF name, shape).
    names: BTreeMap<String, (String, Vec<usize>)>,
    arch: Arch,
    heads: usize,
    kv_heads: usize,
    keep_quantized: bool,
}

impl GgufSource {
    fn new(g: &GgufFile, cfg: &DecoderConfig) -> Result<GgufSource> {
        let data = g.tensor_data();
        let arch = cfg
            .arch()
            .map_err(|m| Error::data("DecoderLm::from_gguf", m))?;
        let mut names = BTreeMap::new();
        for info in &data.tensors {
            let Some(hf) = hf_name(arch, &info.name) else {
                return Err(Error::data(
                    "DecoderLm::from_gguf",
                    format!(
                        "{}: unexpected tensor {} (not part of a {} model)",
                        data.path().display(),
                        info.name,
                        arch.gguf_arch()
                    ),
                ));
            };
            names.insert(hf, (info.name.clone(), info.shape.clone()));
        }
        Ok(GgufSource {
            data,
            names,
            arch,
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
        let t = match rotary_heads(self.arch, gguf, self.heads, self.kv_heads) {
            Some(h) => select_rows(&t, &unpermuted_rows(t.dims()[0], h))?,
            None if norm_offset(self.arch, gguf) => t.sub_scalar(1.0)?,
            None => t,
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
        let q = match rotary_heads(self.arch, gguf, self.heads, self.kv_heads) {
            Some(h) => q.select_rows(&unpermuted_rows(q.dims()[0], h))?,
            None => q,
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

/// The heads whose rows llama.cpp permuted for its rotary layout, for Llama's Q and K.
fn rotary_heads(arch: Arch, gguf: &str, heads: usize, kv_heads: usize) -> Option<usize> {
    if arch.gguf_arch() != "llama" {
        return None;
    }
    if gguf.ends_with("attn_q.weight") {
        Some(heads)
    } else if gguf.ends_with("attn_k.weight") {
        Some(kv_heads)
    } else {
        None
    }
}

/// Whether llama.cpp stores this tensor as `1 + w` (Gemma's norms).
fn norm_offset(arch: Arch, gguf: &str) -> bool {
    arch == Arch::Gemma3 && gguf.ends_with("norm.weight")
}

/// llama.cpp's names of a block's tensors and Hugging Face's (without `.weight` / `.bias`),
/// under `blk.{i}.` and `model.layers.{i}.`.
fn block_names(arch: Arch) -> Vec<(&'static str, &'static str)> {
    let mut names = vec![
        ("attn_norm", "input_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_qkv", "self_attn.qkv_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("attn_q_norm", "self_attn.q_norm"),
        ("attn_k_norm", "self_attn.k_norm"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_down", "mlp.down_proj"),
    ];
    names.push(match arch {
        Arch::Phi3 => ("ffn_up", "mlp.gate_up_proj"),
        _ => ("ffn_up", "mlp.up_proj"),
    });
    if arch == Arch::Gemma3 {
        names.extend([
            ("post_attention_norm", "post_attention_layernorm"),
            ("ffn_norm", "pre_feedforward_layernorm"),
            ("post_ffw_norm", "post_feedforward_layernorm"),
        ]);
    } else {
        names.push(("ffn_norm", "post_attention_layernorm"));
    }
    names
}

/// The other tensors: (llama.cpp, Hugging Face).
const TOP_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// llama.cpp's tensor names to Hugging Face's.
fn hf_name(arch: Arch, gguf: &str) -> Option<String> {
    if let Some((_, hf)) = TOP_NAMES.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let (i, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let (leaf, kind) = part.rsplit_once('.')?;
    let (_, hf) = block_names(arch).into_iter().find(|(g, _)| *g == leaf)?;
    Some(format!("model.layers.{i}.{hf}.{kind}"))
}

/// Hugging Face's tensor names to llama.cpp's.
fn gguf_name(arch: Arch, hf: &str) -> Option<String> {
    if let Some((g, _)) = TOP_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (i, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let (leaf, kind) = part.rsplit_once('.')?;
    let (g, _) = block_names(arch).into_iter().find(|(_, h)| *h == leaf)?;
    Some(format!("blk.{i}.{g}.{kind}"))
}
