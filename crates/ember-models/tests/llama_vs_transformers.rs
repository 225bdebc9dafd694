//! A tiny random-init LlamaForCausalLM (GQA: 4 heads, 2 KV heads) saved by transformers:
//! Ember's logits and greedy generation equal transformers' (`scripts/make_model_fixtures.py`).

use std::path::PathBuf;

use ember_models::{GenerateOpts, Llama, generate};
use ember_tensor::{DType, Device};
use ember_weights::Checkpoint;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

#[test]
fn logits_and_greedy_generation_match_transformers() {
    let model = Llama::from_pretrained(dir().join("tiny-llama"), Device::Cpu, DType::F32).unwrap();
    let reference = Checkpoint::open(dir().join("tiny-llama_ref.safetensors")).unwrap();
    let ids = reference.load("ids", Device::Cpu, None).unwrap();
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
    eprintln!("tiny-llama logits: max |ember - transformers| = {worst:e}");
    assert!(worst < 1e-4, "logits differ by {worst}");

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
    let got = generate(&model, &prompt, Device::Cpu, &opts, |t| streamed.push(t)).unwrap();
    assert_eq!(
        got,
        want[prompt.len()..],
        "greedy continuation with the KV cache"
    );
    assert_eq!(streamed, got);
}
