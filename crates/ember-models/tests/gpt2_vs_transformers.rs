//! A tiny random-init GPT2LMHeadModel saved by transformers: Ember's logits, loss, every
//! parameter gradient and greedy generation equal transformers' (`make_model_fixtures.py`).

use ember_testing::on_every_device;

use std::path::PathBuf;

use ember_core::Backward;
use ember_core::{DType, Device};
use ember_models::{GenerateOpts, Gpt2, generate};
use ember_weights::Checkpoint;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Within 1e-4 (logits), 1e-5 (loss, gradients) on CPU; 1e-3 on wgpu; same greedy tokens.
fn logits_loss_gradients_and_generation_match_transformers(d: Device) {
    let (tol, gtol) = if d == Device::Cpu {
        (1e-4, 1e-5)
    } else {
        (1e-3, 1e-3)
    };
    let model = Gpt2::from_pretrained(dir().join("tiny-gpt2"), d, DType::F32).unwrap();
    let r = Checkpoint::open(dir().join("tiny-gpt2_ref.safetensors")).unwrap();
    let get = |k: &str| r.load(k, d, None).unwrap();
    let ids = get("ids");
    let logits = model.forward(&ids).unwrap().to_vec::<f32>().unwrap();
    let d_logits = max_diff(&logits, &get("logits").to_vec::<f32>().unwrap());
    assert!(d_logits < tol, "logits differ by {d_logits}");

    let loss = model.loss(&ids, &get("labels")).unwrap();
    let d_loss = (loss.to_scalar::<f32>().unwrap() - get("loss").to_vec::<f32>().unwrap()[0]).abs();
    assert!(d_loss < gtol, "loss differs by {d_loss}");
    let grads = loss.backward().unwrap();
    let mut worst = 0.0f32;
    let mut n = 0;
    for name in r.names().iter().filter(|n| n.starts_with("grad.")) {
        let pname = name.trim_start_matches("grad.transformer.");
        let p = model
            .store
            .get(pname)
            .unwrap_or_else(|| panic!("no parameter {pname}"));
        let ours = grads
            .get(&p.tensor())
            .unwrap_or_else(|| panic!("no gradient for {pname}"));
        let d = max_diff(
            &ours.to_vec::<f32>().unwrap(),
            &get(name).to_vec::<f32>().unwrap(),
        );
        assert!(d < gtol, "gradient of {pname} differs by {d}");
        worst = worst.max(d);
        n += 1;
    }
    assert_eq!(n, model.store.names().len());
    eprintln!("{d}: tiny-gpt2: logits {d_logits:e}, loss {d_loss:e}, {n} gradients max {worst:e}");

    let prompt = get("prompt").to_vec::<i64>().unwrap();
    let want = get("greedy").to_vec::<i64>().unwrap();
    let opts = GenerateOpts {
        max_new_tokens: want.len() - prompt.len(),
        ..Default::default()
    };
    let got = generate(&model, &prompt, d, &opts, |_| {}).unwrap();
    assert_eq!(got, want[prompt.len()..]);
}

on_every_device!(
    gpt2,
    logits_loss_gradients_and_generation_match_transformers
);
