//! Quantized inference against llama.cpp (`bench/llama_bench.py`, llama-cpp-python built
//! from source for this CPU), on the same GGUF file with the same threads and tokens.
//!
//! `smollm2-q4_1-{prefill,decode}`: the SmolLM2-135M-Instruct Q4_1 asset as it is;
//! `smollm2-q8_0-*`: that model requantized to Q8_0 by Ember and written with `save_gguf`
//! (both frameworks load the written file). Prefill: 128 fixed tokens in one forward;
//! decode: 64 greedy tokens after that prompt. `gpt2-decode-q8_0`: GPT-2 124M (random
//! weights, as `gpt2-decode`) quantized to Q8_0 by Ember, against Ember's own f32 decode.

use std::path::PathBuf;
use std::time::Instant;

use ember::models::{CausalLm, Llama, weight_bytes_per_token};
use ember::prelude::*;
use ember::quant::QFormat;
use ember::weights::GgufFile;

use crate::workloads::{Measured, gpt2, median};

/// The prompt both frameworks evaluate: 128 fixed ids spread over the vocabulary.
pub fn prompt(vocab: usize) -> Vec<i64> {
    (0..128).map(|i| ((i * 7919 + 11) % vocab) as i64).collect()
}

/// The GGUF file of a `smollm2-<format>-*` workload, written first when it is a conversion.
pub fn smollm2_file(format: &str) -> Result<PathBuf> {
    let asset = ember::assets::path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
    if format == "q4_1" {
        return Ok(asset);
    }
    let fmt: QFormat = format.parse()?;
    let path = std::env::temp_dir().join(format!("ember-bench-smollm2-{format}.gguf"));
    if !path.exists() {
        let g = GgufFile::open(&asset)?;
        let model = Llama::from_gguf_dequantized(&g, Device::Cpu, DType::F32)?;
        model.store.quantize(fmt)?;
        model.save_gguf(&path, Some(&g))?;
    }
    Ok(path)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Prefill (`decode = false`) or decode tokens/s of `model` on the fixed prompt.
fn run(
    model: &dyn CausalLm,
    vocab: usize,
    decode: bool,
    repeats: usize,
) -> Result<(Vec<f64>, f64)> {
    let _no_grad = no_grad();
    let ids = Tensor::from_vec(prompt(vocab), &[1, 128], Device::Cpu)?;
    let (mut runs, mut times) = (vec![], vec![]);
    for i in 0..repeats + 1 {
        let mut cache = model.new_cache();
        let t = Instant::now();
        let logits = model.forward_cached(&ids, &mut cache)?; // (1, 128, V)
        let mut next = logits
            .narrow(1, 127, 1)?
            .reshape(&[-1])?
            .argmax(0, false)?
            .to_scalar::<i64>()?;
        let (count, elapsed) = if decode {
            let t = Instant::now();
            for _ in 0..64 {
                let x = Tensor::from_vec(vec![next], &[1, 1], Device::Cpu)?;
                let logits = model.forward_cached(&x, &mut cache)?.reshape(&[-1])?; // (V,)
                next = logits.argmax(0, false)?.to_scalar::<i64>()?;
            }
            (64.0, ms(t))
        } else {
            (128.0, ms(t))
        };
        if i >= 1 {
            times.push(elapsed / count);
            runs.push(count / (elapsed / 1e3));
        }
    }
    Ok((runs, median(&times)))
}

/// `smollm2-<format>-<prefill|decode>`.
pub fn smollm2(format: &str, decode: bool, repeats: usize) -> Result<Measured> {
    let g = GgufFile::open(smollm2_file(format)?)?;
    let model = Llama::from_gguf(&g, Device::Cpu, DType::F32)?;
    let bytes = weight_bytes_per_token(&model.store, model.cfg.tied()) as f64;
    let (runs, per_token) = run(&model, model.cfg.vocab_size, decode, repeats)?;
    Ok(measured(runs, per_token, bytes))
}

/// GPT-2 124M decode with its matrices in `format` (`None`: f32).
pub fn gpt2_decode(format: Option<QFormat>, repeats: usize) -> Result<Measured> {
    let model = gpt2(Device::Cpu, DType::F32)?;
    if let Some(f) = format {
        model.store.quantize(f)?;
    }
    let bytes = weight_bytes_per_token(&model.store, true) as f64;
    let (runs, per_token) = run(&model, 50257, true, repeats)?;
    Ok(measured(runs, per_token, bytes))
}

/// Tokens/s runs as a figure, with the time and the weight bytes per token.
fn measured(runs: Vec<f64>, per_token: f64, bytes: f64) -> Measured {
    Measured {
        value: median(&runs),
        runs,
        unit: "tokens/s",
        phases: vec![
            ("per token", per_token),
            ("weight MB per token", bytes / 1e6),
        ],
    }
}
