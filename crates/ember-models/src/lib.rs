//! Transformer models that load Hugging Face checkpoints (`config.json` + safetensors) with
//! their own parameter names, and text generation with a KV cache.
//!
//! Today: [`Gpt`] (nanoGPT's model, trained from scratch), [`Gpt2`] (GPT2LMHeadModel, the same
//! blocks), [`Bert`] (BertModel, sentence embeddings), [`DecoderLm`] (Llama 2/3, SmolLM,
//! Mistral, Qwen2, Qwen3, Gemma 3, Phi-3; [`Llama`] is the same type), [`AutoModelForCausalLM`]
//! and [`generate`].
#![warn(missing_docs)]

mod auto;
mod auto_heads;
mod bert;
mod bert_heads;
mod causal_heads;
mod chat;
mod config;
mod decoder;
mod generate;
mod gpt;
mod gpt2;
mod tokenizer;

pub use auto::{AutoModel, AutoModelForCausalLM, causal_lm_types};
pub use auto_heads::{
    AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification,
};
pub use bert::{Bert, BertConfig};
pub use bert_heads::{
    BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, HeadOutput,
};
pub use causal_heads::CausalForSequenceClassification;
pub use chat::{ChatSession, ChatTemplate, RenderLimits, chat_prompt};
pub use config::{Arch, DecoderConfig, LayerAttention, LlamaConfig};
pub use decoder::{DecoderLayer, DecoderLm, DecoderMlp, Llama};
pub use generate::{Flow, GenerateOpts, generate, generate_text, generate_with};
pub use gpt::{Gpt, GptBlock, GptConfig, GptLayout, GptTransformer};
pub use gpt2::{Gpt2, Gpt2Config};
pub use tokenizer::{TextStream, Tokenizer, chatml};

use std::path::Path;

use ember_core::{Error, Result, Tensor};

/// The largest `config.json` accepted (real ones are a few KB).
const MAX_CONFIG: u64 = 16 << 20;

/// Reads `dir/config.json` as JSON (the models keep it to write it back).
pub(crate) fn read_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    // A file, or a directory without config.json, is named with the loader it needs.
    match ember_weights::file_kind(dir) {
        ember_weights::FileKind::Directory { config: true, .. }
        | ember_weights::FileKind::Missing => {}
        kind => {
            return Err(Error::Format {
                format: "config.json",
                path: dir.display().to_string(),
                msg: format!(
                    "from_pretrained takes a Hugging Face model directory; this is {}",
                    kind.advice()
                ),
            });
        }
    }
    let text = ember_weights::read_text(&path, MAX_CONFIG, "config.json")?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        format: "config.json",
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// The distinct names of `names`, joined with commas.
pub(crate) fn dedup_join(names: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if !seen.contains(n) {
            seen.push(n);
        }
    }
    seen.join(", ")
}

/// Checks `config.json`'s `model_type` (when it has one) against the types `loader` reads,
/// so that loading a directory with the wrong class names the type instead of listing every
/// missing tensor.
pub(crate) fn expect_model_type(
    dir: &Path,
    raw: &serde_json::Value,
    loader: &str,
    accepted: &[&str],
) -> Result<()> {
    match raw.get("model_type").and_then(serde_json::Value::as_str) {
        Some(t) if !accepted.contains(&t) => Err(config_error(
            dir,
            format!(
                "model_type is {t:?}, and {loader} loads {}: use the class for {t:?}",
                accepted.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// A config problem as the error of loading `dir/config.json`.
pub(crate) fn config_error(dir: &Path, msg: String) -> Error {
    Error::Format {
        format: "config.json",
        path: dir.join("config.json").display().to_string(),
        msg,
    }
}

/// Parses a config value into a typed config.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    dir: &Path,
    raw: &serde_json::Value,
) -> Result<T> {
    serde_json::from_value(raw.clone()).map_err(|e| Error::Format {
        format: "config.json",
        path: dir.join("config.json").display().to_string(),
        msg: e.to_string(),
    })
}

/// Builds a model with `build` from the safetensors checkpoint in `dir` (renamed and filtered
/// by `opts`): planned against the checkpoint's index, then read tensor by tensor.
pub(crate) fn build_from_dir<M>(
    dir: &Path,
    opts: &ember_nn::LoadOptions,
    device: ember_core::Device,
    dtype: ember_core::DType,
    build: impl Fn(ember_nn::VarStore) -> Result<M>,
    store_of: impl Fn(&M) -> &ember_nn::VarStore,
) -> Result<M> {
    let ckpt = ember_weights::Checkpoint::open(dir)?;
    let source = ember_nn::CheckpointSource::new(ckpt, opts, dir.display().to_string());
    let model = ember_nn::build_from(Box::new(source), device, dtype, build, &store_of)?;
    // A pretrained model starts in eval mode, as transformers' from_pretrained leaves it
    // (dropout off until `train()`; the trainer switches it on).
    store_of(&model).eval();
    Ok(model)
}

/// HF's causal-LM loss of `forward(ids)`: logits at position t predict `labels[t + 1]`;
/// -100 is ignored.
pub(crate) fn shifted_loss(
    op: &'static str,
    ids: &Tensor,
    labels: &Tensor,
    forward: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    check_shifted(op, ids, labels)?;
    let logits = forward(ids)?; // (B, T, V)
    let (t, v) = (logits.dims()[1], logits.dims()[2]);
    let pred = logits.narrow(1, 0, t - 1)?.reshape(&[-1, v as isize])?;
    let next = labels.narrow(1, 1, t - 1)?.reshape(&[-1])?;
    pred.cross_entropy(&next, Default::default())
}

/// Ids and labels of a shifted loss: both `(B, T)` with `T ≥ 2`.
fn check_shifted(op: &'static str, ids: &Tensor, labels: &Tensor) -> Result<()> {
    if ids.rank() != 2 || ids.dims()[1] < 2 || labels.dims() != ids.dims() {
        return Err(Error::shape(
            op,
            &[ids.dims(), labels.dims()],
            "ids and labels must both be (B, T) with T ≥ 2",
        ));
    }
    Ok(())
}

/// [`shifted_loss`] through the fused head and loss ([`ember_nn::loss::linear_cross_entropy`]):
/// `hidden` gives the final hidden states `(B, T, C)` (after the last norm), `head` the
/// `(V, C)` weight; the `(B, T, V)` logits never exist.
pub(crate) fn shifted_head_loss(
    op: &'static str,
    ids: &Tensor,
    labels: &Tensor,
    hidden: impl FnOnce(&Tensor) -> Result<Tensor>,
    head: &ember_nn::Param,
) -> Result<Tensor> {
    check_shifted(op, ids, labels)?;
    let h = hidden(ids)?; // (B, T, C)
    let t = h.dims()[1];
    let next = labels.narrow(1, 1, t - 1)?;
    ember_nn::loss::linear_cross_entropy(&h.narrow(1, 0, t - 1)?, head, None, &next)
}

/// Writes `config.json` and `model.safetensors` (HF names) into `dir`, atomically each.
pub(crate) fn save_dir(
    dir: &Path,
    config: &serde_json::Value,
    store: &ember_nn::VarStore,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| Error::data("save_pretrained", e.to_string()))?;
    ember_weights::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    store.save(&dir.join("model.safetensors"), None)
}

/// Bytes of weights one decoded token reads from `store`: quantized matrices as their
/// kernels stream them (repacked), dense parameters at their dtype's size; embedding tables
/// (rows looked up, so nearly nothing read) count only when `tied` says a head multiplies the
/// token table (`embed_tokens` / `wte`).
pub fn weight_bytes_per_token(store: &ember_nn::VarStore, tied: bool) -> usize {
    store
        .named_parameters()
        .iter()
        .filter(|(name, p)| {
            let table = p.role() == Some(ember_nn::WeightRole::Embedding);
            let token_table = name.contains("embed_tokens") || name.contains("wte");
            !table || (tied && token_table)
        })
        .map(|(_, p)| match p.quantized() {
            Some(q) => q.q.packed_bytes(),
            None => p.dims().iter().product::<usize>() * p.dtype().size_in_bytes(),
        })
        .sum()
}

/// A causal language model that [`generate`] can drive.
pub trait CausalLm {
    /// Fresh per-layer caches for one sequence.
    fn new_cache(&self) -> Vec<ember_nn::KvCache>;
    /// Logits `(B, T, V)` for ids `(B, T)` following the cached positions.
    fn forward_cached(&self, ids: &Tensor, cache: &mut [ember_nn::KvCache]) -> Result<Tensor>;
    /// Logits `(B, 1, V)` of the last position only, the cache filled as by
    /// [`CausalLm::forward_cached`]: a prompt's prefill needs no more (the models apply the
    /// head to one position; this default narrows the full logits).
    fn forward_last(&self, ids: &Tensor, cache: &mut [ember_nn::KvCache]) -> Result<Tensor> {
        let logits = self.forward_cached(ids, cache)?; // (B, T, V)
        let t = logits.dims()[1];
        logits.narrow(1, t - 1, 1)
    }
    /// The positions the model attends over (its context length).
    fn max_positions(&self) -> usize;
}
