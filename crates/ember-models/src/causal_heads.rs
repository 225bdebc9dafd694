//! Sequence classification with a causal transformer, as transformers'
//! `GPT2ForSequenceClassification` and `LlamaForSequenceClassification` (and the rest of the
//! decoder family's): a bias-free `score` projection of each row's last real token, found with
//! `pad_token_id`. The transformer keeps its names (`transformer.*` for GPT-2, `model.*`).

use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{Init, Linear, Module, Param, VarBuilder, VarStore};
use serde_json::Value;

use crate::bert_heads::{Head, HeadOutput, head_config, labels_of, load_head, sequence_loss};
use crate::{DecoderLm, Gpt2};

/// The transformer under the head.
enum Body {
    Gpt2(Box<Gpt2>),
    Decoder(Box<DecoderLm>),
}

/// A causal model with a sequence-classification head (transformers'
/// `XForSequenceClassification` for GPT-2 and the decoder family: Llama, Mistral, Qwen2,
/// Qwen3, Gemma 3, Phi-3).
///
/// Rows are padded on the right with `pad_token_id`: causal attention never looks ahead, so
/// the last real token's state is what an attention mask would give. A batch of more than one
/// row needs `pad_token_id` in config.json (as transformers).
pub struct CausalForSequenceClassification {
    body: Body,
    head: Head,
    score: Linear,
    pad_token_id: Option<i64>,
    /// Label names by id (`id2label`).
    pub labels: Vec<String>,
    config: Value,
}

/// transformers' class for a `model_type`.
fn class_of(model_type: &str) -> Result<&'static str> {
    Ok(match model_type {
        "gpt2" => "GPT2ForSequenceClassification",
        "llama" => "LlamaForSequenceClassification",
        "mistral" => "MistralForSequenceClassification",
        "qwen2" => "Qwen2ForSequenceClassification",
        "qwen3" => "Qwen3ForSequenceClassification",
        "gemma3_text" => "Gemma3TextForSequenceClassification",
        "phi3" => "Phi3ForSequenceClassification",
        other => {
            return Err(Error::data(
                "AutoModelForSequenceClassification",
                format!(
                    "model_type {other:?} has no sequence classifier in Ember (supported: bert, \
                     gpt2, llama, mistral, qwen2, qwen3, gemma3_text, phi3)"
                ),
            ));
        }
    })
}

impl CausalForSequenceClassification {
    /// Loads a directory saved by transformers or Ember; a language-model checkpoint gets a
    /// new `score` (named in `newly_initialized`) with `id2label`'s labels (two when absent).
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Self> {
        Self::load(dir.as_ref(), None, device, dtype)
    }

    /// [`CausalForSequenceClassification::from_pretrained`] with `num_labels` labels.
    pub fn from_pretrained_with_labels(
        dir: impl AsRef<Path>,
        num_labels: usize,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        Self::load(dir.as_ref(), Some(num_labels), device, dtype)
    }

    fn load(dir: &Path, num_labels: Option<usize>, device: Device, dtype: DType) -> Result<Self> {
        let raw = crate::read_config(dir)?;
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("llama")
            .to_string();
        let class = class_of(&model_type)?;
        let (body, hidden) = if model_type == "gpt2" {
            let m = Gpt2::load_body(dir, device, dtype)?;
            let c = m.cfg.n_embd;
            (Body::Gpt2(Box::new(m)), c)
        } else {
            let m = DecoderLm::load_body(dir, &raw, device, dtype)?;
            let c = m.cfg.hidden_size;
            (Body::Decoder(Box::new(m)), c)
        };
        let labels = labels_of(&raw, num_labels)?;
        let n = labels.len();
        let ((store, score), newly_initialized) = load_head(
            dir,
            &["score.weight"],
            device,
            dtype,
            |store| {
                let vb = VarBuilder::new(&store).pp("score");
                let std = 0.02;
                let weight = vb.get("weight", &[n, hidden], Init::Normal { mean: 0.0, std })?;
                drop(vb);
                Ok((store, Linear { weight, bias: None }))
            },
            |(s, _)| s,
        )?;
        let pad_token_id = raw.get("pad_token_id").and_then(Value::as_i64);
        Ok(CausalForSequenceClassification {
            body,
            head: Head {
                store,
                newly_initialized,
            },
            score,
            pad_token_id,
            config: head_config(&raw, class, &labels),
            labels,
        })
    }

    fn body_store(&self) -> &VarStore {
        match &self.body {
            Body::Gpt2(m) => &m.store,
            Body::Decoder(m) => &m.store,
        }
    }

    /// Logits `(B, num_labels)` of right-padded ids `(B, T)` (an attention mask, when given,
    /// must be that padding: ones then zeros), and the loss when `labels` are given.
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> Result<HeadOutput> {
        const OP: &str = "ForSequenceClassification";
        if ids.rank() != 2 {
            return Err(Error::shape(OP, &[ids.dims()], "ids must be (B, T)"));
        }
        let (b, t) = (ids.dims()[0], ids.dims()[1]);
        let rows = ids.to_vec::<i64>()?;
        let last: Vec<i64> = match self.pad_token_id {
            // transformers: the rightmost token that is not padding (0 when all are).
            Some(pad) => rows
                .chunks(t.max(1))
                .map(|r| r.iter().rposition(|&x| x != pad).unwrap_or(0) as i64)
                .collect(),
            None if b == 1 => vec![t as i64 - 1],
            None => {
                return Err(Error::data(
                    OP,
                    "a batch of more than one row needs pad_token_id in config.json to find \
                     each row's last token",
                ));
            }
        };
        if let Some(mask) = attention_mask {
            let m = mask.to_dtype(DType::I64)?.to_vec::<i64>()?;
            let right_padded = m.chunks(t.max(1)).zip(&last).all(|(row, &l)| {
                row.iter()
                    .enumerate()
                    .all(|(j, &v)| (v != 0) == (j as i64 <= l))
            });
            if m.len() != rows.len() || !right_padded {
                return Err(Error::data(
                    OP,
                    "the attention mask must be right padding (ones, then zeros where the \
                     padding tokens are): causal models here take right-padded rows",
                ));
            }
        }
        let hidden = match &self.body {
            Body::Gpt2(m) => m.last_hidden(ids)?,
            Body::Decoder(m) => m.last_hidden(ids)?,
        }; // (B, T, C)
        let c = hidden.dims()[2];
        let flat = hidden.reshape(&[-1, c as isize])?; // (B·T, C)
        let at: Vec<i64> = last
            .iter()
            .enumerate()
            .map(|(row, l)| row as i64 * t as i64 + l)
            .collect();
        let picked = flat.index_select(0, &Tensor::from_vec(at, &[b], ids.device())?)?; // (B, C)
        let logits = self.score.forward(&picked)?; // (B, n)
        let loss = match labels {
            None => None,
            Some(y) => Some(sequence_loss(&self.config, &logits, y)?),
        };
        Ok(HeadOutput { logits, loss })
    }

    /// Training mode (dropout on), as `model.train()`.
    pub fn train(&self) {
        self.body_store().train();
    }

    /// Eval mode (dropout off), as `model.eval()`; models load in eval mode.
    pub fn eval(&self) {
        self.body_store().eval();
    }

    /// Every parameter with transformers' name (`transformer.…` or `model.…`, and `score`).
    pub fn named_parameters(&self) -> Vec<(String, Param)> {
        let prefix = match &self.body {
            Body::Gpt2(_) => "transformer.",
            Body::Decoder(_) => "",
        };
        let mut all: Vec<(String, Param)> = self
            .body_store()
            .named_parameters()
            .into_iter()
            .map(|(n, p)| (format!("{prefix}{n}"), p))
            .collect();
        all.extend(self.head.store.named_parameters());
        all
    }

    /// The parameters an optimizer updates.
    pub fn parameters(&self) -> Vec<Param> {
        let mut all = self.body_store().trainable_parameters();
        all.extend(self.head.store.trainable_parameters());
        all
    }

    /// Head parameters the checkpoint did not have, newly initialized.
    pub fn newly_initialized(&self) -> &[String] {
        &self.head.newly_initialized
    }

    /// Writes `config.json` and `model.safetensors` as transformers saves this class.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::bert_heads::save_named(dir.as_ref(), &self.config, &self.named_parameters())
    }
}
