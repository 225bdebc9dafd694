//! The soak run (`ember-bench --soak`): long runs whose resident memory must stay flat.
//!
//! 10,000 training steps of nanoGPT's model (4 layers, width 128, block 64, batch 8, AdamW)
//! and 10,000 generated tokens (SmolLM2-135M kept in its Q4_1 blocks: ten sequences of 1,000
//! greedy tokens, each with a fresh KV cache), sampling the resident memory (`VmRSS`) as they
//! go. Flat means the samples after the first tenth of the run stay within a few MiB of each
//! other: no tensor, graph, cache or pool that grows with the steps. Not a timed test: a
//! benchmark, printed for `docs/benchmarks.md`.

use std::time::Instant;

use ember::models::{GenerateOpts, Gpt, GptConfig, Llama, Tokenizer, generate_with};
use ember::nn::{VarBuilder, VarStore};
use ember::optim::{AdamW, AdamWConfig, Optimizer};
use ember::prelude::*;
use ember::weights::GgufFile;

use crate::workloads::random_ids;

/// Resident memory of this process now, MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Prints `(step, MiB)` samples and how flat they are after the first tenth.
fn report(what: &str, unit: &str, samples: &[(usize, f64)], seconds: f64) {
    println!(
        "\n{what}: resident memory (MiB) every {} {unit}",
        samples[1].0 - samples[0].0
    );
    for row in samples.chunks(5) {
        let cells: Vec<String> = row
            .iter()
            .map(|(i, m)| format!("{i:>6}: {m:7.1}"))
            .collect();
        println!("  {}", cells.join("   "));
    }
    let warm = &samples[samples.len() / 10..];
    let (lo, hi) = warm.iter().fold((f64::MAX, 0f64), |(lo, hi), (_, m)| {
        (lo.min(*m), hi.max(*m))
    });
    let last = samples.last().map_or(0.0, |s| s.1);
    println!(
        "  after the first tenth: {lo:.1}–{hi:.1} MiB (spread {:.1} MiB, {:.2}% of the last sample); \
         first sample of that range to the last: {:+.1} MiB; {seconds:.0} s in all",
        hi - lo,
        100.0 * (hi - lo) / last.max(1.0),
        last - warm[0].1,
    );
}

fn train(steps: usize) -> Result<()> {
    let (vocab, block, batch) = (65, 64, 8);
    let store = VarStore::with_seed(Device::Cpu, DType::F32, 0);
    let cfg = GptConfig {
        vocab_size: vocab,
        block_size: block,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        bias: false,
    };
    let model = Gpt::new(VarBuilder::new(&store), cfg)?;
    let mut opt = AdamW::new(store.trainable_parameters(), AdamWConfig::default());
    let mut g = Generator::new(1);
    let mut samples = Vec::new();
    let t = Instant::now();
    for step in 0..=steps {
        if step % 500 == 0 {
            samples.push((step, rss_mib()));
        }
        if step == steps {
            break;
        }
        let x = random_ids(batch, block, vocab, &mut g, Device::Cpu)?; // (B, T)
        let y = random_ids(batch, block, vocab, &mut g, Device::Cpu)?; // (B, T)
        let loss = model.loss(&x, &y)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
    }
    report(
        &format!("training, {steps} steps of nanoGPT (block {block}, batch {batch})"),
        "steps",
        &samples,
        t.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn generate(tokens: usize, per_sequence: usize) -> Result<()> {
    let g = GgufFile::open(ember::assets::path(
        "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )?)?;
    let model = Llama::from_gguf(&g, Device::Cpu, DType::F32)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let opts = GenerateOpts {
        max_new_tokens: per_sequence,
        ..GenerateOpts::default()
    };
    let (mut samples, mut done) = (vec![(0, rss_mib())], 0usize);
    let t = Instant::now();
    let mut sequence = 0;
    while done < tokens {
        let prompt = tok.encode(
            &format!("Chapter {sequence}. It was a long day, and"),
            false,
        )?;
        generate_with(&model, &prompt, Device::Cpu, &opts, |_| {
            done += 1;
            if done % 500 == 0 {
                samples.push((done, rss_mib()));
            }
            Ok(if done >= tokens {
                ember::models::Flow::Stop
            } else {
                ember::models::Flow::Continue
            })
        })?;
        sequence += 1;
    }
    report(
        &format!(
            "generation, {tokens} tokens of SmolLM2 Q4_1 ({per_sequence} per sequence, greedy)"
        ),
        "tokens",
        &samples,
        t.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Runs both soaks.
pub fn run() -> Result<()> {
    train(10_000)?;
    generate(10_000, 1_000)
}
