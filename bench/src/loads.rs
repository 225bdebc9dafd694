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
            let dir = std::env::temp_dir().join("ember-bench-gpt2-124m");
            if !dir.join("model.safetensors").exists() {
                gpt2(Device::Cpu, DType::F32)?.save_pretrained(&dir)?;
            }
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
