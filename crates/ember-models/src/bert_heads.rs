//! BERT with task heads, as transformers builds them and with its names, so checkpoints go
//! both ways: [`BertForSequenceClassification`] (pooler, dropout, `classifier`),
//! [`BertForTokenClassification`] (no pooler, dropout, `classifier` on every token) and
//! [`BertForMaskedLM`] (no pooler, `cls.predictions.transform` and the decoder tied to the
//! word embeddings). The encoder's parameters are `bert.*` in the files; a checkpoint without
//! the head (a plain encoder such as MiniLM) gets a new one, named in `newly_initialized`.

use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{
    Activation, CheckpointSource, Dropout, Init, LayerNorm, Linear, LoadOptions, Module, Param,
    VarBuilder, VarStore, build_checked, build_from, linear_with, loss,
};
use ember_weights::Checkpoint;
use serde_json::{Value, json};

use crate::Bert;

/// What a head's forward gives: logits, and the loss when labels were passed.
#[derive(Debug, Clone)]
pub struct HeadOutput {
    /// `(B, num_labels)` for a sequence, `(B, T, num_labels)` per token, `(B, T, V)` for
    /// masked tokens.
    pub logits: Tensor,
    /// The loss of the labels (transformers' choice of loss), when given.
    pub loss: Option<Tensor>,
}

/// A head's own parameters, apart from the encoder's.
pub(crate) struct Head {
    pub(crate) store: VarStore,
    /// Names of parameters the checkpoint lacked (initialized as transformers does).
    pub(crate) newly_initialized: Vec<String>,
}

/// Loads the head named by `names` (its parameters) from `dir`'s checkpoint, or creates it
/// with `build` from a generator when the checkpoint has none of them.
pub(crate) fn load_head<M>(
    dir: &Path,
    names: &[&str],
    device: Device,
    dtype: DType,
    build: impl Fn(VarStore) -> Result<M>,
    store_of: impl Fn(&M) -> &VarStore,
) -> Result<(M, Vec<String>)> {
    let ckpt = Checkpoint::open(dir)?;
    if !names.iter().any(|n| ckpt.contains(n)) {
        let m = build_checked(VarStore::with_seed(device, dtype, 0), build)?;
        return Ok((m, names.iter().map(|n| n.to_string()).collect()));
    }
    // Everything but the head's own names belongs to the encoder (or to another head).
    let ignore: Vec<String> = ckpt
        .names()
        .into_iter()
        .filter(|n| !names.contains(n))
        .map(String::from)
        .collect();
    let opts = LoadOptions {
        ignore,
        ..Default::default()
    };
    let source = CheckpointSource::new(ckpt, &opts, dir.display().to_string());
    let m = build_from(Box::new(source), device, dtype, build, &store_of)?;
    store_of(&m).eval();
    Ok((m, Vec::new()))
}

/// `id2label` of a config (by id), else `num_labels` labels named `LABEL_i`, else two.
pub(crate) fn labels_of(raw: &Value, num_labels: Option<usize>) -> Result<Vec<String>> {
    let bad = |msg: String| Error::data("config.json", msg);
    if let Some(n) = num_labels {
        if n == 0 || n > 1 << 20 {
            return Err(bad(format!("num_labels {n} must be 1 to {}", 1 << 20)));
        }
        return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
    }
    let Some(map) = raw.get("id2label").and_then(Value::as_object) else {
        return Ok(vec!["LABEL_0".into(), "LABEL_1".into()]);
    };
    if map.is_empty() || map.len() > 1 << 20 {
        return Err(bad(format!("id2label has {} labels", map.len())));
    }
    let mut labels = vec![String::new(); map.len()];
    for (id, label) in map {
        let i: usize = id.parse().ok().filter(|i| *i < map.len()).ok_or_else(|| {
            bad(format!(
                "id2label key {id:?} is not an id below {}",
                map.len()
            ))
        })?;
        labels[i] = label.as_str().unwrap_or_default().to_string();
    }
    Ok(labels)
}

/// The config of a head model: the encoder's with the class and the labels.
pub(crate) fn head_config(raw: &Value, class: &str, labels: &[String]) -> Value {
    let mut cfg = raw.clone();
    cfg["architectures"] = json!([class]);
    if !labels.is_empty() {
        let id2label: serde_json::Map<String, Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), json!(l)))
            .collect();
        let label2id: serde_json::Map<String, Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), json!(i)))
            .collect();
        cfg["id2label"] = Value::Object(id2label);
        cfg["label2id"] = Value::Object(label2id);
    }
    cfg
}

/// Writes `config` and every parameter (the encoder's as `bert.*`) as transformers saves them.
fn save(dir: &Path, config: &Value, bert: &Bert, head: &VarStore) -> Result<()> {
    save_named(dir, config, &named_parameters(bert, head))
}

/// Writes `config.json` and `model.safetensors` holding `named` parameters.
pub(crate) fn save_named(dir: &Path, config: &Value, named: &[(String, Param)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| Error::data("save_pretrained", e.to_string()))?;
    ember_weights::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    let tensors: Vec<(String, Tensor)> =
        named.iter().map(|(n, p)| (n.clone(), p.tensor())).collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    ember_weights::save_safetensors(&dir.join("model.safetensors"), &refs, None, None)
}

/// Every parameter by its name in transformers' head models.
fn named_parameters(bert: &Bert, head: &VarStore) -> Vec<(String, Param)> {
    let mut all: Vec<(String, Param)> = bert
        .store
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (format!("bert.{n}"), p))
        .collect();
    all.extend(head.named_parameters());
    all
}

/// The classifier dropout: `classifier_dropout`, else `hidden_dropout_prob`, following the
/// encoder's train/eval mode.
fn classifier_dropout(bert: &Bert) -> Result<Dropout> {
    let p = match bert
        .raw_config
        .get("classifier_dropout")
        .and_then(Value::as_f64)
    {
        Some(p) => p,
        None => bert.cfg.hidden_dropout_prob,
    };
    Dropout::new(VarBuilder::new(&bert.store), p)
}

/// A `classifier` Linear `hidden → n` initialized as transformers does (N(0, 0.02), zero bias).
fn classifier(store: &VarStore, hidden: usize, n: usize) -> Result<Linear> {
    let vb = VarBuilder::new(store).pp("classifier");
    let std = 0.02;
    Ok(Linear {
        weight: vb.get("weight", &[n, hidden], Init::Normal { mean: 0.0, std })?,
        bias: Some(vb.get("bias", &[n], Init::Zeros)?),
    })
}

macro_rules! common_methods {
    () => {
        /// Training mode (dropout on), as `model.train()`.
        pub fn train(&self) {
            self.bert.train();
        }

        /// Eval mode (dropout off), as `model.eval()`; models load in eval mode.
        pub fn eval(&self) {
            self.bert.eval();
        }

        /// Every parameter with transformers' name (`bert.…` and the head's), for an
        /// optimizer or to compare gradients.
        pub fn named_parameters(&self) -> Vec<(String, Param)> {
            named_parameters(&self.bert, &self.head.store)
        }

        /// The parameters an optimizer updates.
        pub fn parameters(&self) -> Vec<Param> {
            let mut all = self.bert.store.trainable_parameters();
            all.extend(self.head.store.trainable_parameters());
            all
        }

        /// Names of head parameters the checkpoint did not have and that were initialized
        /// (transformers' "newly initialized" warning: train them before use).
        pub fn newly_initialized(&self) -> &[String] {
            &self.head.newly_initialized
        }

        /// Writes `config.json` and `model.safetensors` as transformers saves this class, so
        /// its `from_pretrained` loads them.
        pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
            save(dir.as_ref(), &self.config, &self.bert, &self.head.store)
        }
    };
}

/// `BertForSequenceClassification`: the pooled `[CLS]` state, dropout and `classifier`.
/// The loss follows `problem_type` (or, as transformers, infers it: one label is regression
/// (MSE), integer labels single-label (cross-entropy), float labels multi-label (BCE)).
pub struct BertForSequenceClassification {
    /// The encoder (with its pooler).
    pub bert: Bert,
    head: Head,
    linear: Linear,
    dropout: Dropout,
    /// Label names by id (`id2label`).
    pub labels: Vec<String>,
    config: Value,
}

/// The parts both classifiers are made of: the encoder (with or without its pooler), a
/// `classifier` on `hidden_size` features (loaded, or new with the labels' count), dropout,
/// the labels, and the config saved with them (`architecture`'s).
struct ClassifierParts {
    bert: Bert,
    head: Head,
    linear: Linear,
    dropout: Dropout,
    labels: Vec<String>,
    config: Value,
}

fn load_classifier(
    dir: &Path,
    num_labels: Option<usize>,
    device: Device,
    dtype: DType,
    with_pooler: bool,
    architecture: &str,
) -> Result<ClassifierParts> {
    let bert = Bert::load_body(dir, device, dtype, with_pooler)?;
    let labels = labels_of(&bert.raw_config, num_labels)?;
    let (c, n) = (bert.cfg.hidden_size, labels.len());
    let ((store, linear), newly_initialized) = load_head(
        dir,
        &["classifier.weight", "classifier.bias"],
        device,
        dtype,
        |store| {
            let linear = classifier(&store, c, n)?;
            Ok((store, linear))
        },
        |(s, _)| s,
    )?;
    let config = head_config(&bert.raw_config, architecture, &labels);
    Ok(ClassifierParts {
        dropout: classifier_dropout(&bert)?,
        head: Head {
            store,
            newly_initialized,
        },
        linear,
        labels,
        config,
        bert,
    })
}

impl BertForSequenceClassification {
    /// Loads a directory saved by transformers or Ember; an encoder-only checkpoint gets a
    /// new classifier with `id2label`'s labels (two when absent).
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Self> {
        Self::load(dir.as_ref(), None, device, dtype)
    }

    /// [`BertForSequenceClassification::from_pretrained`] with `num_labels` labels (a new
    /// classifier on a pretrained encoder, as `from_pretrained(path, num_labels=n)`).
    pub fn from_pretrained_with_labels(
        dir: impl AsRef<Path>,
        num_labels: usize,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        Self::load(dir.as_ref(), Some(num_labels), device, dtype)
    }

    fn load(dir: &Path, num_labels: Option<usize>, device: Device, dtype: DType) -> Result<Self> {
        const ARCH: &str = "BertForSequenceClassification";
        let p = load_classifier(dir, num_labels, device, dtype, true, ARCH)?;
        let mut config = p.config;
        if num_labels.is_some() {
            config["problem_type"] = Value::Null;
        }
        Ok(BertForSequenceClassification {
            bert: p.bert,
            head: p.head,
            linear: p.linear,
            dropout: p.dropout,
            labels: p.labels,
            config,
        })
    }

    /// Logits `(B, num_labels)` of ids `(B, T)` (mask and token types as [`Bert::forward`]),
    /// and the loss when `labels` are given: `(B,)` ids, or `(B, num_labels)` floats.
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_types: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> Result<HeadOutput> {
        let hidden = self.bert.hidden(ids, attention_mask, token_types)?;
        let pooled = self.bert.pool(&hidden)?; // (B, C)
        let logits = self.linear.forward(&self.dropout.forward(&pooled)?)?; // (B, n)
        let loss = match labels {
            None => None,
            Some(y) => Some(self.loss(&logits, y)?),
        };
        Ok(HeadOutput { logits, loss })
    }

    fn loss(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        sequence_loss(&self.config, logits, labels)
    }

    common_methods!();
}

/// A sequence classifier's loss as transformers picks it: `problem_type`, else regression
/// for one label, single-label for integer labels, multi-label for float ones.
pub(crate) fn sequence_loss(config: &Value, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let n = *logits.dims().last().unwrap_or(&0);
    let kind = match config.get("problem_type").and_then(Value::as_str) {
        Some(k) => k.to_string(),
        None if n == 1 => "regression".into(),
        None if !labels.dtype().is_float() => "single_label_classification".into(),
        None => "multi_label_classification".into(),
    };
    match kind.as_str() {
        "regression" if n == 1 => loss::mse(&logits.reshape(&[-1])?, &labels.reshape(&[-1])?),
        "regression" => loss::mse(logits, labels),
        "single_label_classification" => loss::cross_entropy(logits, labels),
        "multi_label_classification" => loss::binary_cross_entropy_with_logits(logits, labels),
        other => Err(Error::data(
            "ForSequenceClassification",
            format!(
                "problem_type {other:?} is not regression, single_label_classification or \
                 multi_label_classification"
            ),
        )),
    }
}

/// `BertForTokenClassification`: dropout and `classifier` on every token's hidden state; the
/// loss is cross-entropy over tokens, labels of -100 ignored.
pub struct BertForTokenClassification {
    /// The encoder (no pooler).
    pub bert: Bert,
    head: Head,
    linear: Linear,
    dropout: Dropout,
    /// Label names by id (`id2label`).
    pub labels: Vec<String>,
    config: Value,
}

impl BertForTokenClassification {
    /// Loads a directory saved by transformers or Ember; an encoder-only checkpoint gets a
    /// new classifier with `id2label`'s labels (two when absent).
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Self> {
        Self::load(dir.as_ref(), None, device, dtype)
    }

    /// [`BertForTokenClassification::from_pretrained`] with `num_labels` labels.
    pub fn from_pretrained_with_labels(
        dir: impl AsRef<Path>,
        num_labels: usize,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        Self::load(dir.as_ref(), Some(num_labels), device, dtype)
    }

    fn load(dir: &Path, num_labels: Option<usize>, device: Device, dtype: DType) -> Result<Self> {
        const ARCH: &str = "BertForTokenClassification";
        let p = load_classifier(dir, num_labels, device, dtype, false, ARCH)?;
        Ok(BertForTokenClassification {
            bert: p.bert,
            head: p.head,
            linear: p.linear,
            dropout: p.dropout,
            labels: p.labels,
            config: p.config,
        })
    }

    /// Logits `(B, T, num_labels)`, and the loss when `labels` `(B, T)` are given.
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_types: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> Result<HeadOutput> {
        let hidden = self.bert.hidden(ids, attention_mask, token_types)?; // (B, T, C)
        let logits = self.linear.forward(&self.dropout.forward(&hidden)?)?; // (B, T, n)
        let loss = match labels {
            None => None,
            Some(y) => Some(loss::cross_entropy(&logits, y)?),
        };
        Ok(HeadOutput { logits, loss })
    }

    common_methods!();
}

/// `BertForMaskedLM`: `cls.predictions.transform` (dense, activation, LayerNorm) and the
/// decoder tied to the word embeddings with its own bias; cross-entropy over the vocabulary,
/// labels of -100 ignored.
pub struct BertForMaskedLM {
    /// The encoder (no pooler).
    pub bert: Bert,
    head: Head,
    dense: Linear,
    norm: LayerNorm,
    bias: Param,
    act: Activation,
    config: Value,
}

impl BertForMaskedLM {
    /// Loads a directory saved by transformers or Ember; an encoder-only checkpoint gets a
    /// new prediction head.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Self> {
        let dir = dir.as_ref();
        let bert = Bert::load_body(dir, device, dtype, false)?;
        let (c, v, eps) = (
            bert.cfg.hidden_size,
            bert.cfg.vocab_size,
            bert.cfg.layer_norm_eps,
        );
        let names = [
            "cls.predictions.transform.dense.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.bias",
        ];
        let ((store, dense, norm, bias), newly_initialized) = load_head(
            dir,
            &names,
            device,
            dtype,
            |store| {
                let vb = VarBuilder::new(&store).pp("cls.predictions");
                let t = vb.pp("transform");
                let std = 0.02;
                let dense = Linear {
                    weight: t.pp("dense").get(
                        "weight",
                        &[c, c],
                        Init::Normal { mean: 0.0, std },
                    )?,
                    bias: Some(t.pp("dense").get("bias", &[c], Init::Zeros)?),
                };
                let norm = LayerNorm::new(t.pp("LayerNorm"), c, eps, true)?;
                let bias = vb.get("bias", &[v], Init::Zeros)?;
                drop((vb, t));
                Ok((store, dense, norm, bias))
            },
            |(s, ..)| s,
        )?;
        let act = Activation::from_hf(&bert.cfg.hidden_act)?;
        let config = head_config(&bert.raw_config, "BertForMaskedLM", &[]);
        Ok(BertForMaskedLM {
            head: Head {
                store,
                newly_initialized,
            },
            dense,
            norm,
            bias,
            act,
            config,
            bert,
        })
    }

    /// Logits `(B, T, V)`, and the loss when `labels` `(B, T)` are given (-100: not masked).
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_types: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> Result<HeadOutput> {
        let hidden = self.bert.hidden(ids, attention_mask, token_types)?; // (B, T, C)
        let h = self
            .norm
            .forward(&self.act.forward(&self.dense.forward(&hidden)?)?)?;
        // The decoder is the word embedding table (V, C), tied.
        let logits = linear_with(&h, &self.bert.word.weight, Some(&self.bias))?; // (B, T, V)
        let loss = match labels {
            None => None,
            Some(y) => Some(loss::cross_entropy(&logits, y)?),
        };
        Ok(HeadOutput { logits, loss })
    }

    common_methods!();
}
