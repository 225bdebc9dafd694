//! Tiny random-init Gemma 3, Qwen3, Mistral, Phi-3 and Qwen2 models saved by transformers
//! (`scripts/make_zoo_fixtures.py`): Ember's logits, HF's shifted loss, every parameter
//! gradient, and greedy generation through the KV cache (sliding windows shorter than the
//! sequences) equal transformers'; `save_pretrained` reloads with identical logits.

use ember_testing::on_every_device;

use std::path::PathBuf;

use ember_core::{Backward, DType, Device};
use ember_models::{AutoModelForCausalLM, CausalLm, DecoderLm, GenerateOpts, generate};
use ember_weights::Checkpoint;

const MODELS: [&str; 5] = [
    "tiny-gemma3",
    "tiny-qwen3",
    "tiny-mistral",
    "tiny-phi3",
    "tiny-qwen2",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Logits 1e-4 (CPU) / 1e-3 (wgpu), loss and gradients 1e-5 / 1e-3, identical greedy tokens.
fn zoo_matches_transformers(d: Device) {
    let (tol, gtol) = if d == Device::Cpu {
        (1e-4, 1e-5)
    } else {
        (1e-3, 1e-3)
    };
    for name in MODELS {
        let model = DecoderLm::from_pretrained(dir().join(name), d, DType::F32).unwrap();
        let r = Checkpoint::open(dir().join(format!("{name}_ref.safetensors"))).unwrap();
        let get = |k: &str| r.load(k, d, None).unwrap();
        let ids = get("ids");
        let logits = model.forward(&ids).unwrap().to_vec::<f32>().unwrap();
        let d_logits = max_diff(&logits, &get("logits").to_vec::<f32>().unwrap());
        assert!(d_logits < tol, "{name}: logits differ by {d_logits}");

        let loss = model.loss(&ids, &get("labels")).unwrap();
        let want = get("loss").to_vec::<f32>().unwrap()[0];
        let d_loss = (loss.to_scalar::<f32>().unwrap() - want).abs();
        assert!(d_loss < gtol, "{name}: loss differs by {d_loss}");
        let grads = loss.backward().unwrap();
        let (mut worst, mut n) = (0.0f32, 0);
        for g in r.names().iter().filter(|n| n.starts_with("grad.")) {
            let pname = g.trim_start_matches("grad.");
            let p = model
                .store
                .get(pname)
                .unwrap_or_else(|| panic!("{name}: no parameter {pname}"));
            let ours = grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let diff = max_diff(
                &ours.to_vec::<f32>().unwrap(),
                &get(g).to_vec::<f32>().unwrap(),
            );
            assert!(diff < gtol, "{name}: gradient of {pname} differs by {diff}");
            worst = worst.max(diff);
            n += 1;
        }
        assert_eq!(
            n,
            model.store.names().len(),
            "{name}: every parameter checked"
        );
        eprintln!("{d}: {name}: logits {d_logits:e}, loss {d_loss:e}, {n} gradients max {worst:e}");

        let prompt = get("prompt").to_vec::<i64>().unwrap();
        let want = get("greedy").to_vec::<i64>().unwrap();
        let opts = GenerateOpts {
            max_new_tokens: want.len() - prompt.len(),
            ..Default::default()
        };
        let got = generate(&model, &prompt, d, &opts, |_| {}).unwrap();
        assert_eq!(
            got,
            want[prompt.len()..],
            "{name}: greedy with the KV cache"
        );
    }
}

on_every_device!(zoo, zoo_matches_transformers);

/// Decoding token by token through the cache gives the full forward's logits (windows
/// included).
#[test]
fn cached_decoding_equals_the_full_forward() {
    for name in MODELS {
        let model = DecoderLm::from_pretrained(dir().join(name), Device::Cpu, DType::F32).unwrap();
        let r = Checkpoint::open(dir().join(format!("{name}_ref.safetensors"))).unwrap();
        let ids = r
            .load("ids", Device::Cpu, None)
            .unwrap()
            .narrow(0, 0, 1)
            .unwrap(); // (1, 12)
        let full = model.forward(&ids).unwrap().to_vec::<f32>().unwrap();
        let mut cache = model.new_cache();
        let mut steps = Vec::new();
        // a 3-token prefill, then one token at a time
        let first = model
            .forward_cached(&ids.narrow(1, 0, 3).unwrap(), &mut cache)
            .unwrap();
        steps.extend(first.to_vec::<f32>().unwrap());
        for t in 3..12 {
            let step = model
                .forward_cached(&ids.narrow(1, t, 1).unwrap(), &mut cache)
                .unwrap();
            steps.extend(step.to_vec::<f32>().unwrap());
        }
        let diff = max_diff(&full, &steps);
        assert!(diff < 1e-4, "{name}: cached decoding differs by {diff}");
    }
}

/// The auto class picks each architecture from `model_type`, and `save_pretrained` reloads
/// with identical logits (transformers' reload: `scripts/check_roundtrip.py`).
#[test]
fn auto_class_loads_each_architecture_and_save_reloads() {
    let ids = ember_core::Tensor::from_vec(vec![3i64, 1, 4, 1, 5, 9, 2, 6], &[1, 8], Device::Cpu)
        .unwrap();
    for (name, ty) in MODELS
        .iter()
        .zip(["gemma3_text", "qwen3", "mistral", "phi3"])
    {
        let m = AutoModelForCausalLM::from_pretrained(dir().join(name), Device::Cpu, DType::F32)
            .unwrap();
        assert_eq!(m.model_type(), ty);
        let out = match std::env::var("EMBER_ROUNDTRIP_OUT") {
            Ok(d) => PathBuf::from(d).join(name),
            Err(_) => std::env::temp_dir().join(format!("ember-zoo-{}-{name}", std::process::id())),
        };
        m.save_pretrained(&out).unwrap();
        let back = AutoModelForCausalLM::from_pretrained(&out, Device::Cpu, DType::F32).unwrap();
        assert_eq!(
            m.forward(&ids).unwrap().to_vec::<f32>().unwrap(),
            back.forward(&ids).unwrap().to_vec::<f32>().unwrap(),
            "{name}: reloaded logits"
        );
    }
}

/// An unsupported `model_type` is an error listing the supported ones.
#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let d = std::env::temp_dir().join(format!("ember-zoo-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let err = AutoModelForCausalLM::from_pretrained(&d, Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("mamba") && err.contains("gemma3_text") && err.contains("phi3"),
        "{err}"
    );
}

/// `save_gguf` → `from_gguf` gives identical logits for each architecture (llama.cpp's names,
/// Gemma's norms stored as `1 + w` and un-offset again).
#[test]
fn gguf_round_trip_keeps_the_logits() {
    let ids = ember_core::Tensor::from_vec(vec![3i64, 1, 4, 1, 5, 9, 2, 6], &[1, 8], Device::Cpu)
        .unwrap();
    for name in MODELS {
        let model = DecoderLm::from_pretrained(dir().join(name), Device::Cpu, DType::F32).unwrap();
        let path =
            std::env::temp_dir().join(format!("ember-zoo-{}-{name}.gguf", std::process::id()));
        model.save_gguf(&path, None).unwrap();
        let g = ember_weights::GgufFile::open(&path).unwrap();
        let back = DecoderLm::from_gguf(&g, Device::Cpu, DType::F32).unwrap();
        let (a, b) = (
            model.forward(&ids).unwrap().to_vec::<f32>().unwrap(),
            back.forward(&ids).unwrap().to_vec::<f32>().unwrap(),
        );
        if let Ok(d) = std::env::var("EMBER_ROUNDTRIP_OUT") {
            // the config written from GGUF metadata, for scripts/check_roundtrip.py
            back.save_pretrained(PathBuf::from(d).join(format!("{name}-from-gguf")))
                .unwrap();
        }
        let diff = max_diff(&a, &b);
        // Gemma's norms pass through `w + 1 - 1` in f32.
        assert!(
            diff < 1e-5,
            "{name}: GGUF round trip changed the logits by {diff}"
        );
        std::fs::remove_file(&path).ok();
    }
}
