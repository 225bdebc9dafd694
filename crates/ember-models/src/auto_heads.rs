//! transformers' auto classes for task heads: the class from `config.json`'s `model_type`.

use std::path::Path;

use ember_core::{DType, Device, Result, Tensor};
use ember_nn::Param;
use serde_json::Value;

use crate::{
    BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
    CausalForSequenceClassification, HeadOutput,
};

/// `AutoModelForSequenceClassification`: BERT ([`BertForSequenceClassification`]) or a causal
/// model ([`CausalForSequenceClassification`]: GPT-2 and the decoder family) by `model_type`.
///
/// ```no_run
/// use ember_core::{DType, Device, Tensor};
/// use ember_models::AutoModelForSequenceClassification;
/// // A fine-tuned classifier, or an encoder to fine-tune with a new 3-label head.
/// let model = AutoModelForSequenceClassification::from_pretrained_with_labels(
///     "all-MiniLM-L6-v2", 3, Device::Cpu, DType::F32)?;
/// let ids = Tensor::from_vec(vec![101i64, 2023, 102], &[1, 3], Device::Cpu)?;
/// let logits = model.forward(&ids, None, None)?.logits; // (1, 3)
/// # Ok::<(), ember_core::Error>(())
/// ```
pub enum AutoModelForSequenceClassification {
    /// `bert`
    Bert(Box<BertForSequenceClassification>),
    /// `gpt2`, `llama`, `mistral`, `qwen2`, `qwen3`, `gemma3_text`, `phi3`
    Causal(Box<CausalForSequenceClassification>),
}

impl AutoModelForSequenceClassification {
    /// Loads `dir` with the class its `model_type` names; an encoder or language-model
    /// checkpoint gets a new head.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Self> {
        Self::load(dir.as_ref(), None, device, dtype)
    }

    /// [`AutoModelForSequenceClassification::from_pretrained`] with `num_labels` labels.
    pub fn from_pretrained_with_labels(
        dir: impl AsRef<Path>,
        num_labels: usize,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        Self::load(dir.as_ref(), Some(num_labels), device, dtype)
    }

    fn load(dir: &Path, n: Option<usize>, device: Device, dtype: DType) -> Result<Self> {
        let raw = crate::read_config(dir)?;
        if raw.get("model_type").and_then(Value::as_str) == Some("bert") {
            let m = match n {
                Some(n) => BertForSequenceClassification::from_pretrained_with_labels(
                    dir, n, device, dtype,
                )?,
                None => BertForSequenceClassification::from_pretrained(dir, device, dtype)?,
            };
            return Ok(Self::Bert(Box::new(m)));
        }
        let m = match n {
            Some(n) => {
                CausalForSequenceClassification::from_pretrained_with_labels(dir, n, device, dtype)?
            }
            None => CausalForSequenceClassification::from_pretrained(dir, device, dtype)?,
        };
        Ok(Self::Causal(Box::new(m)))
    }

    /// Logits `(B, num_labels)`, and the loss when `labels` are given (BERT's token types are
    /// zeros; causal models take right-padded rows).
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> Result<HeadOutput> {
        match self {
            Self::Bert(m) => m.forward(ids, attention_mask, None, labels),
            Self::Causal(m) => m.forward(ids, attention_mask, labels),
        }
    }

    /// Label names by id.
    pub fn labels(&self) -> &[String] {
        match self {
            Self::Bert(m) => &m.labels,
            Self::Causal(m) => &m.labels,
        }
    }

    /// Every parameter with transformers' name.
    pub fn named_parameters(&self) -> Vec<(String, Param)> {
        match self {
            Self::Bert(m) => m.named_parameters(),
            Self::Causal(m) => m.named_parameters(),
        }
    }

    /// The parameters an optimizer updates.
    pub fn parameters(&self) -> Vec<Param> {
        match self {
            Self::Bert(m) => m.parameters(),
            Self::Causal(m) => m.parameters(),
        }
    }

    /// Training mode (dropout on).
    pub fn train(&self) {
        match self {
            Self::Bert(m) => m.train(),
            Self::Causal(m) => m.train(),
        }
    }

    /// Eval mode (dropout off); models load in eval mode.
    pub fn eval(&self) {
        match self {
            Self::Bert(m) => m.eval(),
            Self::Causal(m) => m.eval(),
        }
    }

    /// Writes the directory transformers' `from_pretrained` loads.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        match self {
            Self::Bert(m) => m.save_pretrained(dir),
            Self::Causal(m) => m.save_pretrained(dir),
        }
    }
}

/// `AutoModelForTokenClassification`: BERT is the architecture Ember has a token classifier
/// for; another `model_type` is an error naming it.
pub type AutoModelForTokenClassification = BertForTokenClassification;

/// `AutoModelForMaskedLM`: BERT is the architecture Ember has a masked LM for; another
/// `model_type` is an error naming it.
pub type AutoModelForMaskedLM = BertForMaskedLM;
