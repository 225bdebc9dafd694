//! A tiny random-init LlamaForCausalLM (GQA: 4 heads, 2 KV heads) saved by transformers:
//! Ember's logits and greedy generation equal transformers' (`scripts/make_model_fixtures.py`).

use ember_testing::on_every_device;

use std::path::PathBuf;

use ember_core::{DType, Device};
use ember_models::{GenerateOpts, Llama, generate};
use ember_weights::Checkpoint;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

/// Logits within 1e-4 on CPU and 1e-3 on wgpu; the same greedy tokens on both.
fn logits_and_greedy_generation_match_transformers(d: Device) {
    let tol = if d == Device::Cpu { 1e-4 } else { 1e-3 };
    let model = Llama::from_pretrained(dir().join("tiny-llama"), d, DType::F32).unwrap();
    let reference = Checkpoint::open(dir().join("tiny-llama_ref.safetensors")).unwrap();
    let ids = reference.load("ids", d, None).unwrap();
    let ours = model.forward(&ids).unwrap().to_vec::<f32>().unwrap();
    let theirs = reference
        .load("logits", Device::Cpu, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!("{d}: tiny-llama logits: max |ember - transformers| = {worst:e}");
    assert!(worst < tol, "logits differ by {worst}");

    let prompt = reference
        .load("prompt", Device::Cpu, None)
        .unwrap()
        .to_vec::<i64>()
        .unwrap();
    let want = reference
        .load("greedy", Device::Cpu, None)
        .unwrap()
        .to_vec::<i64>()
        .unwrap();
    let mut streamed = Vec::new();
    let opts = GenerateOpts {
        max_new_tokens: want.len() - prompt.len(),
        ..Default::default()
    };
    let got = generate(&model, &prompt, d, &opts, |t| streamed.push(t)).unwrap();
    assert_eq!(
        got,
        want[prompt.len()..],
        "greedy continuation with the KV cache"
    );
    assert_eq!(streamed, got);
}

on_every_device!(llama, logits_and_greedy_generation_match_transformers);
