//! `AutoModelForCausalLM` and `AutoModel`: the class picked from `config.json`'s `model_type`
//! or a GGUF file's `general.architecture`, as transformers' auto classes do.

use std::path::Path;

use ember_core::{DType, Device, Result, Tensor};
use ember_nn::{KvCache, VarStore};
use ember_weights::GgufFile;

use crate::config::Arch;
use crate::{Bert, CausalLm, DecoderLm, Gpt2};

/// A causal LM of any supported architecture: [`DecoderLm`] (Llama, Mistral, Qwen2, Qwen3,
/// Gemma 3, Phi-3) or [`Gpt2`].
///
/// ```no_run
/// use ember_core::{DType, Device};
/// use ember_models::{AutoModelForCausalLM, CausalLm};
/// let model = AutoModelForCausalLM::from_pretrained("path/to/model", Device::Cpu, DType::F32)?;
/// println!("{} with {} positions", model.model_type(), model.max_positions());
/// # Ok::<(), ember_core::Error>(())
/// ```
pub enum AutoModelForCausalLM {
    /// the decoder family
    Decoder(Box<DecoderLm>),
    /// GPT-2
    Gpt2(Box<Gpt2>),
}

/// Every `model_type` [`AutoModelForCausalLM::from_pretrained`] loads.
pub fn causal_lm_types() -> Vec<&'static str> {
    let mut t: Vec<&str> = Arch::ALL.map(Arch::model_type).to_vec();
    t.push("gpt2");
    t
}

/// `dir/config.json`'s `model_type`, or an error naming what is missing.
fn model_type(dir: &Path, raw: &serde_json::Value) -> Result<String> {
    match raw.get("model_type").and_then(serde_json::Value::as_str) {
        Some(t) => Ok(t.to_string()),
        None => Err(crate::config_error(
            dir,
            "no model_type: the auto classes need it to pick the architecture".into(),
        )),
    }
}

impl AutoModelForCausalLM {
    /// Loads a Hugging Face directory with the class its `model_type` names; an unsupported
    /// type is an error listing the supported ones.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: Device,
        dtype: DType,
    ) -> Result<AutoModelForCausalLM> {
        let dir = dir.as_ref();
        let raw = crate::read_config(dir)?;
        let t = model_type(dir, &raw)?;
        if t == "gpt2" {
            return Ok(AutoModelForCausalLM::Gpt2(Box::new(Gpt2::from_pretrained(
                dir, device, dtype,
            )?)));
        }
        if Arch::from_model_type(&t).is_none() {
            return Err(crate::config_error(
                dir,
                format!(
                    "model_type {t:?} is not supported by AutoModelForCausalLM (supported: {})",
                    causal_lm_types().join(", ")
                ),
            ));
        }
        Ok(AutoModelForCausalLM::Decoder(Box::new(
            DecoderLm::from_pretrained(dir, device, dtype)?,
        )))
    }

    /// Loads a GGUF file with the class its `general.architecture` names, quantized tensors
    /// kept in their blocks ([`DecoderLm::from_gguf`]).
    pub fn from_gguf(g: &GgufFile, device: Device, dtype: DType) -> Result<AutoModelForCausalLM> {
        Ok(AutoModelForCausalLM::Decoder(Box::new(
            DecoderLm::from_gguf(g, device, dtype)?,
        )))
    }

    /// [`AutoModelForCausalLM::from_gguf`] with every tensor dequantized to `dtype` (to train
    /// all of them).
    pub fn from_gguf_dequantized(
        g: &GgufFile,
        device: Device,
        dtype: DType,
    ) -> Result<AutoModelForCausalLM> {
        Ok(AutoModelForCausalLM::Decoder(Box::new(
            DecoderLm::from_gguf_dequantized(g, device, dtype)?,
        )))
    }

    /// Opens `path` as GGUF when its bytes say it is one (whatever its name), else as a
    /// Hugging Face directory.
    pub fn from_path(
        path: impl AsRef<Path>,
        device: Device,
        dtype: DType,
    ) -> Result<AutoModelForCausalLM> {
        let path = path.as_ref();
        if ember_weights::file_kind(path) == ember_weights::FileKind::Gguf {
            AutoModelForCausalLM::from_gguf(&GgufFile::open(path)?, device, dtype)
        } else {
            AutoModelForCausalLM::from_pretrained(path, device, dtype)
        }
    }

    /// The parameters.
    pub fn store(&self) -> &VarStore {
        match self {
            AutoModelForCausalLM::Decoder(m) => &m.store,
            AutoModelForCausalLM::Gpt2(m) => &m.store,
        }
    }

    /// `model_type` (`qwen3`, `gemma3_text`, `gpt2`, ...).
    pub fn model_type(&self) -> &'static str {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.arch.model_type(),
            AutoModelForCausalLM::Gpt2(_) => "gpt2",
        }
    }

    /// Whether the head multiplies by the token embedding matrix.
    pub fn tied(&self) -> bool {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.cfg.tied(),
            AutoModelForCausalLM::Gpt2(_) => true,
        }
    }

    /// End-of-sequence ids from the config (empty when it names none).
    pub fn eos_ids(&self) -> Vec<i64> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.cfg.eos_ids(),
            AutoModelForCausalLM::Gpt2(m) => m.eos_token_id().into_iter().collect(),
        }
    }

    /// Logits `(B, T, V)` for ids `(B, T)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.forward(ids),
            AutoModelForCausalLM::Gpt2(m) => m.forward(ids),
        }
    }

    /// Gradient checkpointing on or off (see [`DecoderLm::gradient_checkpointing`]).
    pub fn gradient_checkpointing(&self, on: bool) {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.gradient_checkpointing(on),
            AutoModelForCausalLM::Gpt2(m) => m.gradient_checkpointing(on),
        }
    }

    /// HF's causal-LM loss: logits at position t predict `labels[t + 1]`; -100 is ignored.
    pub fn loss(&self, ids: &Tensor, labels: &Tensor) -> Result<Tensor> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.loss(ids, labels),
            AutoModelForCausalLM::Gpt2(m) => m.loss(ids, labels),
        }
    }

    /// What goes before Ember's parameter names to give transformers' module paths (peft's
    /// adapter files use those): `"transformer."` for GPT-2, empty for the others.
    pub fn hf_module_prefix(&self) -> &'static str {
        match self {
            AutoModelForCausalLM::Decoder(_) => "",
            AutoModelForCausalLM::Gpt2(_) => "transformer.",
        }
    }

    /// Writes `config.json` and `model.safetensors` in Hugging Face's layout.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.save_pretrained(dir),
            AutoModelForCausalLM::Gpt2(m) => m.save_pretrained(dir),
        }
    }

    /// Training mode (dropout active).
    pub fn train(&self) {
        self.store().train();
    }

    /// Eval mode (dropout off).
    pub fn eval(&self) {
        self.store().eval();
    }
}

impl CausalLm for AutoModelForCausalLM {
    fn new_cache(&self) -> Vec<KvCache> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.new_cache(),
            AutoModelForCausalLM::Gpt2(m) => m.new_cache(),
        }
    }

    fn forward_cached(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.forward_cached(ids, cache),
            AutoModelForCausalLM::Gpt2(m) => m.forward_cached(ids, cache),
        }
    }

    fn forward_last(&self, ids: &Tensor, cache: &mut [KvCache]) -> Result<Tensor> {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.forward_last(ids, cache),
            AutoModelForCausalLM::Gpt2(m) => m.forward_last(ids, cache),
        }
    }

    fn max_positions(&self) -> usize {
        match self {
            AutoModelForCausalLM::Decoder(m) => m.max_positions(),
            AutoModelForCausalLM::Gpt2(m) => m.max_positions(),
        }
    }
}

/// An encoder of any supported architecture (today BERT: `bert`).
pub enum AutoModel {
    /// BERT
    Bert(Box<Bert>),
}

impl AutoModel {
    /// Loads a Hugging Face directory with the encoder class its `model_type` names; an
    /// unsupported type is an error listing the supported ones.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: Device,
        dtype: DType,
    ) -> Result<AutoModel> {
        let dir = dir.as_ref();
        let raw = crate::read_config(dir)?;
        match model_type(dir, &raw)?.as_str() {
            "bert" => Ok(AutoModel::Bert(Box::new(Bert::from_pretrained(
                dir, device, dtype,
            )?))),
            t => Err(crate::config_error(
                dir,
                format!("model_type {t:?} is not supported by AutoModel (supported: bert)"),
            )),
        }
    }

    /// The parameters.
    pub fn store(&self) -> &VarStore {
        match self {
            AutoModel::Bert(m) => &m.store,
        }
    }

    /// Sentence embeddings `(B, C)`: mean over the attention mask, L2-normalized.
    pub fn embed(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        match self {
            AutoModel::Bert(m) => m.embed(ids, attention_mask),
        }
    }
}
