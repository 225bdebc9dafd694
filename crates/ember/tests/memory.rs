//! Memory accounting on a known model (the tiny GPT-2 fixture, AdamW, batch 2 × 16): the
//! trainer's peak reports parameter, gradient and optimizer bytes equal to their exact sizes;
//! activations shrink with gradient checkpointing; LoRA trains a far smaller state;
//! `metrics.jsonl` carries the peak.

use std::path::PathBuf;

use ember::models::Gpt2;
use ember::nn::lora::{Lora, LoraConfig};
use ember::optim::{AdamW, AdamWConfig, Schedule};
use ember::prelude::*;
use ember::train::{TokenStream, TrainConfig, Trainer};
use ember::usage::{self, Usage};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny-gpt2")
}

/// Peak usage of 3 training steps of `trained` (the model's store or adapters beside it),
/// and the last sample (after the last backward).
fn train(model: &Gpt2, trained: &ember::nn::VarStore, name: &str) -> (Usage, Usage) {
    let ids: Vec<i64> = (0..400).map(|i| (i * 7 % 50) as i64).collect();
    let (train, val) = TokenStream::new(ids, 16).unwrap().split(0.8).unwrap();
    let loss_fn = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        ember::nn::loss::cross_entropy(&model.forward(x)?, y)
    };
    let opt = AdamW::new(trained.trainable_parameters(), AdamWConfig::default());
    let out = std::env::temp_dir().join(format!("ember-memory-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 2,
        eval_batches: 1,
        out_dir: out.clone(),
        progress: false,
        ..Default::default()
    };
    usage::reset_peak(Device::Cpu);
    let mut trainer = Trainer::new(trained, Box::new(opt), Schedule::Constant(1e-3), cfg);
    if !std::ptr::eq(trained, &model.store) {
        trainer = trainer.with_frozen(&model.store);
    }
    trainer.fit(&train, Some(&val), &loss_fn).unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value =
        serde_json::from_str(metrics.lines().rfind(|l| l.contains("val_loss")).unwrap()).unwrap();
    let peak = usage::peak(Device::Cpu);
    assert_eq!(last["peak_mem_bytes"].as_u64(), Some(peak.total()));
    std::fs::remove_dir_all(&out).ok();
    (peak, usage::live(Device::Cpu))
}

#[test]
fn peak_memory_by_category_is_exact_and_checkpointing_cuts_activations() {
    let model = Gpt2::from_pretrained(fixture(), Device::Cpu, DType::F32).unwrap();
    let params = model.store.nbytes() as u64;
    let (plain, after_backward) = train(&model, &model.store, "plain");
    eprintln!("full fine-tune peak: {plain:?}");
    assert_eq!(plain.parameters, params);
    // f32 everywhere: one gradient per parameter, two AdamW moments per parameter.
    assert_eq!(plain.optimizer, 2 * params);
    assert_eq!(after_backward.gradients, params);
    assert_eq!(
        after_backward.activations, 0,
        "the backward freed the graph"
    );
    assert!(plain.activations > 0);

    // Activations kept for backward by one forward, with and without checkpointing.
    let ids: Vec<i64> = (0..64).map(|i| (i * 3 % 50) as i64).collect();
    let ids = Tensor::from_vec(ids, &[4, 16], Device::Cpu).unwrap();
    let kept = |on: bool| {
        model.gradient_checkpointing(on);
        usage::saved_for_backward(&model.loss(&ids, &ids).unwrap(), &[])
    };
    let (full, ck) = (kept(false), kept(true));
    eprintln!("activations kept: {full} bytes, {ck} with checkpointing");
    assert!(ck * 2 < full, "{ck} vs {full}");
    let (ck_peak, _) = train(&model, &model.store, "checkpointed");
    eprintln!("checkpointed peak: {ck_peak:?}");
    assert!(ck_peak.total() < plain.total());
    model.gradient_checkpointing(false);

    let lora = Lora::apply(&model.store, LoraConfig::new(2, 4.0, &["c_attn"]), 0).unwrap();
    let adapters = lora.store.nbytes() as u64;
    let (small, after) = train(&model, &lora.store, "lora");
    eprintln!("LoRA peak: {small:?}");
    assert_eq!(
        small.parameters,
        params + adapters,
        "the frozen base and the adapters"
    );
    assert_eq!(small.optimizer, 2 * adapters);
    assert_eq!(after.gradients, adapters, "gradients for the adapters only");
}
