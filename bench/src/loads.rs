//! Load times: a pretrained model from its files to a model ready to run, in milliseconds
//! (median of `repeats` after one warm load, so the files are in the page cache).
//!
//! `load-gpt2`: GPT-2 small (124M, f32 safetensors) saved once from a random model into the
//! temporary directory; `load-minilm` (BERT, f32 safetensors) and `load-smollm2` (Llama,
//! GGUF Q4_1 dequantized to f32) from the asset cache (`scripts/fetch_assets.sh`).

use std::time::Instant;

use ember::models::{Bert, Gpt2, Llama};
use ember::prelude::*;
use ember::weights::GgufFile;

use crate::workloads::{Measured, gpt2, median};

/// Times `load` (one warm-up, then `repeats` runs): milliseconds.
fn timed<T>(repeats: usize, mut load: impl FnMut() -> Result<T>) -> Result<Measured> {
    drop(load()?);
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let model = load()?;
        runs.push(t.elapsed().as_secs_f64() * 1e3);
        drop(model);
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "ms",
        phases: vec![],
    })
}

/// One load workload by name, on `device` in f32.
pub fn load(name: &str, repeats: usize, device: Device) -> Result<Measured> {
    match name {
        "load-gpt2" => {
            let dir = gpt2_dir()?;
            timed(repeats, || Gpt2::from_pretrained(&dir, device, DType::F32))
        }
        "load-minilm" => {
            let dir = ember::assets::path("minilm")?;
            timed(repeats, || Bert::from_pretrained(&dir, device, DType::F32))
        }
        "load-smollm2" => {
            let path = ember::assets::path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
            timed(repeats, || {
                Llama::from_gguf(&GgufFile::open(&path)?, device, DType::F32)
            })
        }
        other => Err(Error::data(
            "ember-bench",
            format!("unknown workload {other}"),
        )),
    }
}

/// GPT-2 small (124M, random) saved once as a Hugging Face directory in the temporary
/// directory (what `load-gpt2`, `gpt2-generate` and `bench/python_bench.py` load).
pub fn gpt2_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join("ember-bench-gpt2-124m");
    if !dir.join("model.safetensors").exists() {
        gpt2(Device::Cpu, DType::F32)?.save_pretrained(&dir)?;
    }
    Ok(dir)
}

/// `gpt2-generate`: GPT-2 124M loaded from [`gpt2_dir`] through `ember::models::generate`
/// (what the `generate` example and Python's `model.generate` run), greedy after a 128-token
/// prompt: decode tokens/s over 32 new tokens, a 1-token generation (the prefill) timed apart
/// and taken off. `bench/python_bench.py` measures the same from Python.
pub fn gpt2_generate(repeats: usize) -> Result<Measured> {
    use ember::models::{GenerateOpts, generate};
    let model = Gpt2::from_pretrained(gpt2_dir()?, Device::Cpu, DType::F32)?;
    let prompt: Vec<i64> = (0..128).map(|i| (i * 389 % 50257) as i64).collect();
    let time = |n: usize| -> Result<f64> {
        let opts = GenerateOpts {
            max_new_tokens: n,
            ..Default::default()
        };
        let t = Instant::now();
        let out = generate(&model, &prompt, Device::Cpu, &opts, |_| {})?;
        debug_assert_eq!(out.len(), n);
        Ok(t.elapsed().as_secs_f64())
    };
    time(33)?; // warm-up
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let (one, all) = (time(1)?, time(33)?);
        runs.push(32.0 / (all - one));
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "tokens/s",
        phases: vec![],
    })
}
