//! A tiny random-init BertModel saved by transformers, with a padding mask and token types:
//! hidden states, pooler output and mean-pooled sentence embeddings equal transformers'.

use ember_testing::on_every_device;

use std::path::PathBuf;

use ember_core::{DType, Device};
use ember_models::Bert;
use ember_weights::Checkpoint;

/// Within 1e-4 on CPU, 1e-3 on wgpu.
fn hidden_states_pooler_and_sentence_embeddings_match_transformers(d: Device) {
    let tol = if d == Device::Cpu { 1e-4 } else { 1e-3 };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models");
    let model = Bert::from_pretrained(dir.join("tiny-bert"), d, DType::F32).unwrap();
    let r = Checkpoint::open(dir.join("tiny-bert_ref.safetensors")).unwrap();
    let get = |k: &str| r.load(k, d, None).unwrap();
    let (ids, mask, types) = (get("ids"), get("mask"), get("types"));
    let (hidden, pooler) = model.forward(&ids, Some(&mask), Some(&types)).unwrap();
    let diff = |a: &ember_core::Tensor, k: &str| {
        let (a, b) = (a.to_vec::<f32>().unwrap(), get(k).to_vec::<f32>().unwrap());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let (dh, dp) = (diff(&hidden, "hidden"), diff(&pooler, "pooler"));
    assert!(dh < tol && dp < tol, "hidden {dh}, pooler {dp}");
    // Mean pooling over the mask + L2 normalization, as sentence-transformers.
    let emb = model.embed(&ids, &mask).unwrap();
    let de = diff(&emb, "sentence");
    assert!(de < tol / 10.0, "sentence embeddings differ by {de}");
    eprintln!("{d}: tiny-bert: hidden {dh:e}, pooler {dp:e}, sentence embeddings {de:e}");
}

on_every_device!(
    bert,
    hidden_states_pooler_and_sentence_embeddings_match_transformers
);
