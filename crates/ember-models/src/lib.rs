//! Transformer models that load Hugging Face checkpoints (`config.json` + safetensors) with
//! their own parameter names, and text generation with a KV cache.
//!
//! Today: [`Bert`] (BertModel, sentence embeddings), [`Gpt2`] (GPT2LMHeadModel), [`Llama`] (LlamaForCausalLM: Llama 2/3, Mistral, Qwen2,
//! SmolLM) and [`generate`].
#![warn(missing_docs)]

mod bert;
mod config;
mod generate;
mod gpt2;
mod llama;

pub use bert::{Bert, BertConfig};
pub use config::LlamaConfig;
pub use generate::{GenerateOpts, generate};
pub use gpt2::{Gpt2, Gpt2Config};
pub use llama::Llama;

use ember_tensor::{Result, Tensor};

/// A causal language model that [`generate`] can drive.
pub trait CausalLm {
    /// Fresh per-layer caches for one sequence.
    fn new_cache(&self) -> Vec<ember_nn::KvCache>;
    /// Logits `(B, T, V)` for ids `(B, T)` following the cached positions.
    fn forward_cached(&self, ids: &Tensor, cache: &mut [ember_nn::KvCache]) -> Result<Tensor>;
}
