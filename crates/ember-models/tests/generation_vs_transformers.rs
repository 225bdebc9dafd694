//! Generation options against transformers' `generate` on real models: SmolLM2-135M-Instruct
//! and Gemma 3 270M, both read from their GGUF files and dequantized to f32 as transformers
//! reads them (`scripts/make_generation_fixtures.py` wrote
//! `tests/fixtures/generation_options.json`). Every case's greedy tokens must equal
//! transformers': repetition penalty (once per distinct token), n-gram bans, minimum new
//! tokens, stop strings, sequence bias and all of them together. Without the assets the tests
//! say loudly that they skipped; with `EMBER_REQUIRE_ASSETS=1` (CI) that is a failure.

use ember_core::{DType, Device};
use ember_models::{DecoderLm, GenerateOpts, Tokenizer, generate_text};
use ember_testing::{asset, read_fixture};
use ember_weights::GgufFile;
use serde_json::Value;

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// The case's options in Ember's names (transformers' names in the fixture).
fn options(case: &Value, max_new_tokens: usize) -> GenerateOpts {
    let o = &case["options"];
    let mut opts = GenerateOpts {
        max_new_tokens,
        stop_tokens: ids(&case["eos"]),
        ..Default::default()
    };
    for (key, v) in o.as_object().unwrap() {
        match key.as_str() {
            "repetition_penalty" => opts.repetition_penalty = v.as_f64().unwrap(),
            "no_repeat_ngram_size" => opts.no_repeat_ngram_size = v.as_u64().unwrap() as usize,
            "min_new_tokens" => opts.min_new_tokens = v.as_u64().unwrap() as usize,
            "stop_strings" => {
                opts.stop_strings = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect()
            }
            "sequence_bias" => {
                opts.sequence_bias = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (ids(&e[0]), e[1].as_f64().unwrap() as f32))
                    .collect()
            }
            other => panic!("the fixture names an option this test does not map: {other}"),
        }
    }
    opts
}

fn check(model_name: &str, file: &str) {
    let Some(path) = asset(file) else { return };
    let g = GgufFile::open(&path).unwrap();
    let model = DecoderLm::from_gguf_dequantized(&g, Device::Cpu, DType::F32).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let r: Value = serde_json::from_slice(&read_fixture("generation_options.json")).unwrap();
    let max_new = r["max_new_tokens"].as_u64().unwrap() as usize;
    let mut checked = 0;
    for case in r["cases"].as_array().unwrap() {
        if case["model"] != model_name {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let opts = options(case, max_new);
        let prompt = ids(&case["prompt"]);
        let got = generate_text(&model, &tok, &prompt, Device::Cpu, &opts, |_| {
            Ok(ember_models::Flow::Continue)
        })
        .unwrap();
        let want = ids(&case["tokens"]);
        assert_eq!(
            got,
            want,
            "{model_name} {name}: ember {:?} vs transformers {:?}",
            tok.decode(&got, false).unwrap(),
            tok.decode(&want, false).unwrap()
        );
        checked += 1;
    }
    eprintln!("{model_name}: {checked} generation cases equal transformers' greedy tokens");
    assert!(checked >= 10, "only {checked} cases for {model_name}");
}

#[test]
fn smollm2_generation_options_match_transformers() {
    check("smollm2", "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_generation_options_match_transformers() {
    check("gemma3", "gemma3/gemma-3-270m-q4_k_m.gguf");
}
