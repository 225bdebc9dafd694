//! Hugging Face `config.json` for the Llama family, tolerant of unknown fields.

use std::path::Path;

use ember_core::{Error, Result};
use serde::Deserialize;

/// `rope_parameters` (transformers 5) or `rope_scaling` (older files).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RopeParameters {
    /// The base, when given here.
    pub rope_theta: Option<f64>,
    /// `default`, or a scaling type Ember does not implement yet.
    pub rope_type: Option<String>,
    /// Older spelling of `rope_type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// The fields of a Llama-family `config.json` that Ember uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LlamaConfig {
    /// `model_type` (`llama`, `mistral`, `qwen2`, ...).
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
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// rope parameters (transformers 5)
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// rope scaling (older files)
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    /// `lm_head` shares the embedding matrix
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// q/k/v/o biases (Llama's `attention_bias`; Qwen2 has q/k/v biases regardless)
    #[serde(default)]
    pub attention_bias: bool,
    /// MLP activation
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// beginning-of-sequence id
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    /// end-of-sequence id(s)
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<LlamaConfig> {
        let dir = path.parent().unwrap_or(Path::new("."));
        LlamaConfig::from_value(dir, &crate::read_config(dir)?)
    }

    /// Parses and checks an already read `dir/config.json`.
    pub fn from_value(dir: &Path, raw: &serde_json::Value) -> Result<LlamaConfig> {
        let cfg: LlamaConfig = crate::typed(dir, raw)?;
        cfg.check().map_err(|msg| crate::config_error(dir, msg))?;
        Ok(cfg)
    }

    /// Checks that the sizes are positive and consistent (heads divide the width, key/value
    /// heads divide the heads, an even head width, products that fit), the norm epsilon and
    /// rope base are finite, and the rope and activation are ones Ember implements.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|msg| Error::data("LlamaConfig", msg))
    }

    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let scaling = self.rope_parameters.iter().chain(&self.rope_scaling);
        for r in scaling {
            let kind = r
                .rope_type
                .as_deref()
                .or(r.kind.as_deref())
                .unwrap_or("default");
            if kind != "default" {
                return Err(format!("rope scaling type {kind:?} is not supported yet"));
            }
        }
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
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 0.0) {
            return Err(format!("rope_theta {theta} must be finite and positive"));
        }
        if !matches!(self.hidden_act.as_str(), "silu" | "swish") {
            return Err(format!(
                "hidden_act {:?} is not supported for Llama-family models (silu is)",
                self.hidden_act
            ));
        }
        Ok(())
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width (0 for a config without heads, which [`LlamaConfig::validate`]
    /// rejects).
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(
            self.hidden_size
                .checked_div(self.num_attention_heads)
                .unwrap_or(0),
        )
    }

    /// Rope base from `rope_parameters`, then `rope_theta`, else 10000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }

    /// True when q/k/v carry biases (Qwen2, or `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type.as_deref() == Some("qwen2")
    }

    /// End-of-sequence ids.
    pub fn eos_ids(&self) -> Vec<i64> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_i64().into_iter().collect(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_i64()).collect(),
            _ => Vec::new(),
        }
    }
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
pub(crate) fn finite(name: &str, v: f64, min: f64) -> std::result::Result<(), String> {
    if !(v.is_finite() && v >= min) {
        return Err(format!("{name} {v} must be finite and at least {min}"));
    }
    Ok(())
}
