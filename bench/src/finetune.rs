//! Fine-tuning workloads (issue 18's targets): SmolLM2-135M trained fully or through LoRA
//! (r = 8 on q, k, v, o), and GPT-2 124M with and without gradient checkpointing. Models are
//! randomly initialized with the real shapes (as the PyTorch side, so loading costs nothing
//! on either); the JSON adds Ember's own peak memory accounting (`ember::usage`).

use ember::models::{DecoderConfig, DecoderLm};
use ember::nn::VarStore;
use ember::nn::lora::{Lora, LoraConfig};
use ember::optim::{AdamW, AdamWConfig};
use ember::prelude::*;
use ember::usage::{self, Usage};

use crate::workloads::{Measured, gpt2_with_dropout, random_ids, train_steps};

/// SmolLM2-135M's shape (Llama: 30 layers, width 576, 9 heads, 3 KV heads, MLP 1536, vocab
/// 49152, tied head).
fn smollm2_config() -> Result<DecoderConfig> {
    let cfg = serde_json::json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "tie_word_embeddings": true,
    });
    serde_json::from_value(cfg).map_err(|e| Error::data("ember-bench", e.to_string()))
}

/// `repeats` timed AdamW steps (after 2 warmup) of `loss` over random ids `(batch, seq)` of
/// `vocab` on `trained` (the model's store, or adapters beside `model`), and the peak of the
/// memory samples.
fn steps(
    repeats: usize,
    (batch, seq, vocab): (usize, usize, usize),
    (model, trained): (&VarStore, &VarStore),
    loss: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Measured, Usage)> {
    let mut opt = AdamW::new(trained.trainable_parameters(), AdamWConfig::with_lr(1e-4));
    let (frozen_bytes, frozen) = if std::ptr::eq(model, trained) {
        (0, vec![])
    } else {
        let weights = model.named_parameters().into_iter();
        (model.nbytes(), weights.map(|(_, p)| p.tensor()).collect())
    };
    let mut g = Generator::new(5);
    let batches = || {
        let ids = random_ids(batch, seq, vocab, &mut g, Device::Cpu)?;
        Ok((ids.clone(), ids))
    };
    usage::reset_peak(Device::Cpu);
    let params = (trained.nbytes() + frozen_bytes) as u64;
    let m = train_steps(
        repeats,
        batch * seq,
        batches,
        |x, _| loss(x),
        &mut opt,
        None,
        (params, &frozen),
    )?;
    Ok((m, usage::peak(Device::Cpu)))
}

/// SmolLM2-135M fine-tuning at batch 4 × 256 in f32: every weight, or LoRA r = 8 (alpha 16)
/// on q, k, v, o.
pub fn smollm2(lora: bool, repeats: usize) -> Result<(Measured, Usage)> {
    let model = DecoderLm::new(smollm2_config()?, Device::Cpu, DType::F32, 0)?;
    let adapters = if lora {
        let cfg = LoraConfig::new(8, 16.0, &["q_proj", "k_proj", "v_proj", "o_proj"]);
        Some(Lora::apply(&model.store, cfg, 0)?)
    } else {
        None
    };
    let trained = adapters.as_ref().map_or(&model.store, |l| &l.store);
    steps(repeats, (4, 256, 49152), (&model.store, trained), |ids| {
        model.loss(ids, ids)
    })
}

/// GPT-2 124M training at batch 4 × 512 in f32, with or without gradient checkpointing.
pub fn gpt2_train_512(checkpointing: bool, repeats: usize) -> Result<(Measured, Usage)> {
    // No dropout, as the PyTorch side of this workload.
    let model = gpt2_with_dropout(Device::Cpu, DType::F32, 0.0)?;
    model.train();
    model.gradient_checkpointing(checkpointing);
    steps(
        repeats,
        (4, 512, 50257),
        (&model.store, &model.store),
        |ids| model.loss(ids, ids),
    )
}
