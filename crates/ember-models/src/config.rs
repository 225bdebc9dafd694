//! Hugging Face `config.json` of the decoder family (Llama, Mistral, Qwen2, Qwen3, Gemma 3,
//! Phi-3), tolerant of unknown fields.

use std::path::Path;

use ember_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The architectures [`crate::DecoderLm`] runs, told apart by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (Llama 2/3, SmolLM)
    Llama,
    /// `mistral`: Llama with a sliding window
    Mistral,
    /// `qwen2`: q/k/v biases
    Qwen2,
    /// `qwen3`: q/k RMSNorm per head
    Qwen3,
    /// `gemma3_text`: `(1 + w)` norms around attention and MLP, q/k norms, GeGLU, scaled
    /// embeddings, local (sliding) and global layers with their own rope bases
    Gemma3,
    /// `phi3`: fused `qkv_proj` and `gate_up_proj`
    Phi3,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 6] = [
        Arch::Llama,
        Arch::Mistral,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Gemma3,
        Arch::Phi3,
    ];

    /// The architecture of a `model_type`.
    pub fn from_model_type(t: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.model_type() == t)
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3_text",
            Arch::Phi3 => "phi3",
        }
    }

    /// transformers' class (`architectures` in `config.json`).
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Mistral => "MistralForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Qwen3 => "Qwen3ForCausalLM",
            Arch::Gemma3 => "Gemma3ForCausalLM",
            Arch::Phi3 => "Phi3ForCausalLM",
        }
    }

    /// GGUF's `general.architecture` (llama.cpp writes Mistral as `llama`).
    pub fn gguf_arch(self) -> &'static str {
        match self {
            Arch::Llama | Arch::Mistral => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
        }
    }

    /// The architecture of a GGUF `general.architecture`.
    pub fn from_gguf_arch(a: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|x| x.gguf_arch() == a)
    }

    /// Per-head RMSNorm on queries and keys (`q_norm`, `k_norm`).
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3 | Arch::Gemma3)
    }
}

/// The fields of a decoder's `config.json` that Ember uses; written back as read.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct DecoderConfig {
    /// `model_type` (`llama`, `mistral`, `qwen2`, `qwen3`, `gemma3_text`, `phi3`); Llama
    /// when absent.
    #[serde(default)]
    pub model_type: Option<String>,
    /// vocabulary size
    pub vocab_size: usize,
    /// model width
    pub hidden_size: usize,
    /// MLP width
    pub intermediate_size: usize,
    /// blocks
    pub num_hidden_layers: usize,
    /// query heads
    pub num_attention_heads: usize,
    /// key/value heads (GQA); defaults to the query heads
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// per-head width; defaults to `hidden_size / num_attention_heads`
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// positions the rotary tables cover
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// top-level rope base (most hub files)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// rope parameters (transformers 5): `{rope_theta, rope_type, ...}`, or one such object
    /// per layer type (Gemma 3: `full_attention`, `sliding_attention`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<Value>,
    /// rope scaling (older files)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    /// Gemma 3's rope base of local layers (older files)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_local_base_freq: Option<f64>,
    /// Phi's share of each head that is rotated (only 1 is supported)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_rotary_factor: Option<f64>,
    /// `lm_head` shares the embedding matrix (default: Gemma 3 yes, the others no)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    /// q/k/v/o biases (Llama's `attention_bias`; Qwen2 has q/k/v biases regardless)
    #[serde(default)]
    pub attention_bias: bool,
    /// MLP activation (`silu`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Gemma's name for the MLP activation (`gelu_pytorch_tanh`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    /// Gemma: scores scaled by `query_pre_attn_scalar^-1/2` instead of `head_dim^-1/2`
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "whole_as_int"
    )]
    pub query_pre_attn_scalar: Option<f64>,
    /// keys a sliding-window layer sees
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Qwen: whether the window is used at all
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Qwen: layers from this one on use the window
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_window_layers: Option<usize>,
    /// `full_attention` / `sliding_attention` per layer (transformers 5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3 (older files): every n-th layer is global
    #[serde(
        default,
        alias = "_sliding_window_pattern",
        skip_serializing_if = "Option::is_none"
    )]
    pub sliding_window_pattern: Option<usize>,
    /// logits become `cap · tanh(logits / cap)`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f64>,
    /// attention scores capped the same way (Gemma 2; refused)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_logit_softcapping: Option<f64>,
    /// beginning-of-sequence id
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<i64>,
    /// end-of-sequence id(s)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<Value>,
    /// padding id
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<i64>,
    /// dropout on the attention probabilities in training mode (0 when absent)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_dropout: Option<f64>,
    /// Phi-3's dropout on the attention and MLP outputs before each residual add
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resid_pdrop: Option<f64>,
}

/// The Llama family's config: the decoder config.
pub type LlamaConfig = DecoderConfig;

/// Writes a whole number as an integer (transformers' configs type some as `int`).
fn whole_as_int<S: serde::Serializer>(
    v: &Option<f64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}

fn default_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}

/// One layer's attention span and rope base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// keys seen, when limited
    pub window: Option<usize>,
    /// rope base
    pub theta: f64,
    /// linear rope scaling factor (1 for none)
    pub linear_factor: f64,
}

impl DecoderConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<DecoderConfig> {
        let dir = path.parent().unwrap_or(Path::new("."));
        DecoderConfig::from_value(dir, &crate::read_config(dir)?)
    }

    /// Parses and checks an already read `dir/config.json`.
    pub fn from_value(dir: &Path, raw: &Value) -> Result<DecoderConfig> {
        let cfg: DecoderConfig = crate::typed(dir, raw)?;
        cfg.check().map_err(|msg| crate::config_error(dir, msg))?;
        Ok(cfg)
    }

    /// Checks that the sizes are positive and consistent (heads divide the width, key/value
    /// heads divide the heads, an even head width, products that fit), the norm epsilon and
    /// rope bases are finite, and the architecture, rope scaling and activation are ones
    /// Ember implements.
    pub fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|msg| Error::data("DecoderConfig", msg))
    }

    /// The architecture, from `model_type` (Llama when absent).
    pub fn arch(&self) -> std::result::Result<Arch, String> {
        match self.model_type.as_deref() {
            None => Ok(Arch::Llama),
            Some(t) => Arch::from_model_type(t).ok_or_else(|| {
                format!(
                    "model_type {t:?} is not a decoder Ember runs (supported: {})",
                    supported_types()
                )
            }),
        }
    }

    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let arch = self.arch()?;
        positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ])?;
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_dim.is_none() {
            divides(
                "hidden_size",
                self.hidden_size,
                "num_attention_heads",
                self.num_attention_heads,
            )?;
        }
        let hd = self.head_dim();
        if hd == 0 || !hd.is_multiple_of(2) {
            return Err(format!(
                "head_dim {hd} must be positive and even (rotary pairs)"
            ));
        }
        times(
            "num_attention_heads × head_dim",
            self.num_attention_heads,
            hd,
        )?;
        finite("rms_norm_eps", self.rms_norm_eps, 0.0)?;
        probability("attention_dropout", self.attention_dropout)?;
        probability("resid_pdrop", self.resid_pdrop)?;
        for i in 0..self.num_hidden_layers.min(1 << 16) {
            let l = self.layer(i)?;
            if !(l.theta.is_finite() && l.theta > 0.0) {
                return Err(format!(
                    "rope_theta {} must be finite and positive",
                    l.theta
                ));
            }
            if l.window == Some(0) {
                return Err("sliding_window must be positive".into());
            }
        }
        if let Some(f) = self
            .partial_rotary_factor
            .or(self.rope_field("partial_rotary_factor"))
            && f != 1.0
        {
            return Err(format!(
                "partial_rotary_factor {f} is not supported (the whole head is rotated)"
            ));
        }
        if let Some(c) = self.final_logit_softcapping {
            finite("final_logit_softcapping", c, f64::MIN_POSITIVE)?;
        }
        if self.attn_logit_softcapping.is_some() {
            return Err("attn_logit_softcapping is not supported".into());
        }
        if let Some(s) = self.query_pre_attn_scalar {
            finite("query_pre_attn_scalar", s, f64::MIN_POSITIVE)?;
        }
        let act = self.activation();
        let ok = match arch {
            Arch::Gemma3 => matches!(act, "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast"),
            _ => matches!(act, "silu" | "swish"),
        };
        if !ok {
            return Err(format!(
                "activation {act:?} is not supported for {} models",
                arch.model_type()
            ));
        }
        Ok(())
    }

    /// The rope objects in the config: `rope_parameters` (flat or per layer type) and
    /// `rope_scaling`.
    fn rope_objects(&self) -> Vec<&serde_json::Map<String, Value>> {
        let mut out = Vec::new();
        for v in self.rope_parameters.iter().chain(&self.rope_scaling) {
            if let Some(m) = v.as_object() {
                let nested: Vec<_> = m.values().filter_map(Value::as_object).collect();
                if nested.is_empty() {
                    out.push(m);
                } else {
                    out.extend(nested);
                }
            }
        }
        out
    }

    /// A numeric field of the (flat) rope parameters.
    fn rope_field(&self, key: &str) -> Option<f64> {
        self.rope_objects()
            .iter()
            .find_map(|m| m.get(key).and_then(Value::as_f64))
    }

    /// The rope object for a layer type (`full_attention` / `sliding_attention`) when the
    /// parameters are per layer type, else the flat one.
    fn rope_for(&self, kind: &str) -> Option<&serde_json::Map<String, Value>> {
        let p = self.rope_parameters.as_ref()?.as_object()?;
        match p.get(kind).and_then(Value::as_object) {
            Some(m) => Some(m),
            None if p.values().any(Value::is_object) => None,
            None => Some(p),
        }
    }

    /// Layer `i`'s window, rope base and scaling, or why the config cannot be run.
    pub fn layer(&self, i: usize) -> std::result::Result<LayerAttention, String> {
        let arch = self.arch()?;
        let sliding = match &self.layer_types {
            Some(types) => match types.get(i).map(String::as_str) {
                Some("sliding_attention") => true,
                Some("full_attention") => false,
                Some(other) => return Err(format!("layer type {other:?} is not supported")),
                None => {
                    return Err(format!(
                        "layer_types has {} entries for {} layers",
                        types.len(),
                        self.num_hidden_layers
                    ));
                }
            },
            None => match arch {
                Arch::Gemma3 => !(i + 1).is_multiple_of(self.sliding_window_pattern.unwrap_or(6)),
                Arch::Qwen2 | Arch::Qwen3 => {
                    self.use_sliding_window == Some(true)
                        && i >= self.max_window_layers.unwrap_or(0)
                }
                _ => true,
            },
        };
        let window = if sliding { self.sliding_window } else { None };
        let kind = if sliding && arch == Arch::Gemma3 {
            "sliding_attention"
        } else {
            "full_attention"
        };
        let rope = self.rope_for(kind);
        let mut scaling: Vec<&serde_json::Map<String, Value>> = rope.into_iter().collect();
        scaling.extend(self.rope_scaling.as_ref().and_then(Value::as_object));
        let mut linear_factor = 1.0;
        for r in scaling {
            let ty = r
                .get("rope_type")
                .or(r.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            match ty {
                "default" => {}
                "linear" => {
                    linear_factor = r.get("factor").and_then(Value::as_f64).unwrap_or(1.0);
                    if !(linear_factor.is_finite() && linear_factor >= 1.0) {
                        return Err(format!(
                            "linear rope factor {linear_factor} is not at least 1"
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "rope scaling type {other:?} is not supported (default and linear are)"
                    ));
                }
            }
        }
        let local_default =
            (arch == Arch::Gemma3 && sliding).then(|| self.rope_local_base_freq.unwrap_or(10000.0));
        let theta = rope
            .and_then(|r| r.get("rope_theta").and_then(Value::as_f64))
            .or(local_default)
            .or(self.rope_theta)
            .unwrap_or(if arch == Arch::Gemma3 { 1e6 } else { 10000.0 });
        Ok(LayerAttention {
            window,
            theta,
            linear_factor,
        })
    }

    /// The MLP activation's name (`hidden_act`, Gemma's `hidden_activation`).
    pub fn activation(&self) -> &str {
        let gemma = self.model_type.as_deref() == Some("gemma3_text");
        let default = if gemma { "gelu_pytorch_tanh" } else { "silu" };
        self.hidden_activation
            .as_deref()
            .or(self.hidden_act.as_deref())
            .unwrap_or(default)
    }

    /// Whether `lm_head` is the embedding matrix.
    pub fn tied(&self) -> bool {
        self.tie_word_embeddings
            .unwrap_or(self.model_type.as_deref() == Some("gemma3_text"))
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width (0 for a config without heads, which [`DecoderConfig::validate`]
    /// rejects).
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(
            self.hidden_size
                .checked_div(self.num_attention_heads)
                .unwrap_or(0),
        )
    }

    /// The rope base of full-attention layers.
    pub fn rope_theta(&self) -> f64 {
        let last = self.num_hidden_layers.saturating_sub(1);
        (0..self.num_hidden_layers)
            .rev()
            .find_map(|i| self.layer(i).ok().filter(|l| l.window.is_none()))
            .or_else(|| self.layer(last).ok())
            .map_or(10000.0, |l| l.theta)
    }

    /// True when q/k/v carry biases (Qwen2, or `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type.as_deref() == Some("qwen2")
    }

    /// Scores' scale when it is not `1/√head_dim` (Gemma's `query_pre_attn_scalar`).
    pub fn attention_scale(&self) -> Option<f64> {
        self.query_pre_attn_scalar.map(|s| 1.0 / s.sqrt())
    }

    /// End-of-sequence ids.
    pub fn eos_ids(&self) -> Vec<i64> {
        match &self.eos_token_id {
            Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_i64()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The decoder `model_type`s, for error messages.
pub(crate) fn supported_types() -> String {
    Arch::ALL.map(Arch::model_type).join(", ")
}

/// The first of `fields` that is zero, as an error.
pub(crate) fn positive(fields: &[(&str, usize)]) -> std::result::Result<(), String> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(format!("{name} must be positive, got 0")),
        None => Ok(()),
    }
}

/// `a` must be a multiple of `b`.
pub(crate) fn divides(an: &str, a: usize, bn: &str, b: usize) -> std::result::Result<(), String> {
    if b == 0 || !a.is_multiple_of(b) {
        return Err(format!("{an} {a} is not a multiple of {bn} {b}"));
    }
    Ok(())
}

/// `a · b` without overflow.
pub(crate) fn times(what: &str, a: usize, b: usize) -> std::result::Result<usize, String> {
    a.checked_mul(b)
        .ok_or_else(|| format!("{what} ({a} × {b}) overflows"))
}

/// A finite value of at least `min`.
/// A dropout probability: absent, or in [0, 1).
pub(crate) fn probability(name: &str, p: Option<f64>) -> std::result::Result<(), String> {
    match p {
        Some(p) if !(0.0..1.0).contains(&p) => {
            Err(format!("{name} {p} must be a probability in [0, 1)"))
        }
        _ => Ok(()),
    }
}

pub(crate) fn finite(name: &str, v: f64, min: f64) -> std::result::Result<(), String> {
    if !(v.is_finite() && v >= min) {
        return Err(format!("{name} {v} must be finite and at least {min}"));
    }
    Ok(())
}
