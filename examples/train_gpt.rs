//! A character-level GPT trained from scratch: the reference trainer, read top to bottom.
//!
//! ```sh
//! bash scripts/fetch_assets.sh                  # Shakespeare's plays into ~/.cache/ember/assets
//! cargo run --release --example train_gpt       # ~6 minutes on 2 CPU cores
//! cargo run --release --example train_gpt -- --text my.txt --steps 500
//! cargo run --release --example train_gpt -- --resume runs/train_gpt --steps 4000
//! ```
//!
//! The model is nanoGPT's, `ember::models::Gpt` (pre-LayerNorm blocks, causal self-attention,
//! a 4x GELU MLP, learned positions, the output head tied to the token embedding), without
//! biases or dropout. The run directory gets `metrics.jsonl`, `loss.png`,
//! `checkpoints/step-N/`, `config.json` and `vocab.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use ember::models::{Gpt, GptConfig};
use ember::optim::{AdamW, AdamWConfig, cosine_with_warmup, decay_groups};
use ember::prelude::*;
use ember::train::{TokenStream, TrainConfig, Trainer};

/// Train a character-level GPT on Shakespeare (or any text file).
#[derive(Parser, Debug)]
struct Args {
    /// Text to train on (default: Shakespeare's plays from the asset cache).
    #[arg(long)]
    text: Option<PathBuf>,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features ember/wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Run directory: metrics, plot, checkpoints, vocabulary.
    #[arg(long, default_value = "runs/train_gpt")]
    out: PathBuf,
    /// Continue the run in this directory (its vocabulary and model shape are reused).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Optimizer steps in total.
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Context length in characters.
    #[arg(long, default_value_t = 128)]
    block: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    /// Attention heads per block.
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    /// Model width.
    #[arg(long, default_value_t = 128)]
    n_embd: usize,
    /// Peak learning rate (after warmup; cosine decay to a tenth of it).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Evaluate every this many steps.
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Validation batches per evaluation.
    #[arg(long, default_value_t = 20)]
    eval_batches: usize,
    /// Characters to sample at the end.
    #[arg(long, default_value_t = 500)]
    sample_chars: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Seed of the initialization, batches and sampling.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
}

/// `n` characters sampled after `context`, one at a time, at `temperature`.
fn sample(
    gpt: &Gpt,
    context: &[i64],
    n: usize,
    temperature: f64,
    g: &mut Generator,
) -> Result<Vec<i64>> {
    let _no_grad = no_grad();
    let device = gpt.model.wte.weight.tensor().device();
    let mut ids = context.to_vec();
    for _ in 0..n {
        let window = &ids[ids.len().saturating_sub(gpt.cfg.block_size)..];
        let x = Tensor::from_slice(window, &[1, window.len()], device)?;
        let logits = gpt.forward(&x)?.narrow(1, window.len() - 1, 1)?; // (1, 1, V)
        let probs = logits
            .div_scalar(temperature)?
            .softmax(-1)?
            .to_vec::<f32>()?;
        // Inverse-CDF draw from the categorical distribution.
        let mut u = g.uniform() as f32;
        let mut next = probs.len() - 1;
        for (i, p) in probs.iter().enumerate() {
            if u < *p {
                next = i;
                break;
            }
            u -= p;
        }
        ids.push(next as i64);
    }
    Ok(ids[context.len()..].to_vec())
}

/// Shakespeare's plays from the asset cache (`scripts/fetch_assets.sh`), concatenated.
fn default_text() -> Result<String> {
    let dir = ember::assets::path("shakespeare")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_gut.txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        let msg = "no *_gut.txt texts: run `bash scripts/fetch_assets.sh`";
        return Err(Error::data(
            "train_gpt",
            format!("{}: {msg}", dir.display()),
        ));
    }
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| Error::io(p, e)))
        .collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        format: "json",
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::data("json", e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let out = args.resume.clone().unwrap_or_else(|| args.out.clone());
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;

    // Data: characters → ids; the first 90% trains, the rest validates.
    let text = match &args.text {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
        None => default_text()?,
    };
    let vocab: Vec<char> = if args.resume.is_some() {
        read_json(&out.join("vocab.json"))?
    } else {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        chars
    };
    let index: std::collections::HashMap<char, i64> = vocab
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as i64))
        .collect();
    let ids: Vec<i64> = text
        .chars()
        .filter_map(|c| index.get(&c).copied())
        .collect();
    let (train, val) = TokenStream::new(ids, args.block)?.split(0.9)?;
    println!(
        "{} characters, vocabulary of {} (a uniform guess scores {:.2} nats)",
        text.chars().count(),
        vocab.len(),
        (vocab.len() as f64).ln()
    );

    // Model: a fresh one, or the shape of the run being resumed.
    let cfg = if args.resume.is_some() {
        read_json(&out.join("config.json"))?
    } else {
        GptConfig {
            vocab_size: vocab.len(),
            block_size: args.block,
            n_layer: args.n_layer,
            n_head: args.n_head,
            n_embd: args.n_embd,
            bias: false,
        }
    };
    write_json(&out.join("vocab.json"), &vocab)?;
    write_json(&out.join("config.json"), &cfg)?;
    manual_seed(args.seed);
    let store = VarStore::with_seed(args.device, DType::F32, args.seed);
    let model = Gpt::new(VarBuilder::new(&store), cfg.clone())?; // nanoGPT's model
    println!(
        "GPT: {} layers, {} heads, width {}, context {}: {} parameters on {}",
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        cfg.block_size,
        store.num_parameters(),
        args.device
    );

    // Optimizer: AdamW with weight decay on matrices only, warmup then cosine decay.
    let groups = decay_groups(store.trainable_parameters(), 0.1);
    let opt = AdamW::with_groups(
        groups,
        AdamWConfig {
            lr: args.lr,
            betas: (0.9, 0.99),
            ..Default::default()
        },
    );
    let schedule = cosine_with_warmup(args.lr, args.warmup, args.steps, args.lr / 10.0);
    let tcfg = TrainConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        clip: Some(1.0),
        eval_every: args.eval_every,
        eval_batches: args.eval_batches,
        log_every: 10,
        checkpoint_every: args.eval_every,
        out_dir: out.clone(),
        seed: args.seed,
        device: args.device,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&store, Box::new(opt), schedule, tcfg);
    if args.resume.is_some() {
        trainer.resume(&out)?;
        println!("resumed at step {}", trainer.step());
    }

    // Train: cross-entropy of the next character at every position.
    let loss_fn = |x: &Tensor, y: &Tensor| model.loss(x, y); // over B·T positions
    let start = Instant::now();
    let summary = trainer.fit(&train, Some(&val), &loss_fn)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "done: {} steps, train loss {:.4}, val loss {:.4}, {:.0} tokens/s, {:.1} s",
        summary.steps,
        summary.train_loss,
        summary.val_loss.unwrap_or(f64::NAN),
        summary.tokens_per_s,
        secs
    );
    println!(
        "wrote {}, {} and {}",
        out.join("metrics.jsonl").display(),
        out.join("loss.png").display(),
        out.join("checkpoints").display()
    );

    // Sample: continue a newline with `sample_chars` characters.
    let mut g = Generator::new(args.seed);
    let start_id = index.get(&'\n').copied().unwrap_or(0);
    let sampled = sample(
        &model,
        &[start_id],
        args.sample_chars,
        args.temperature,
        &mut g,
    )?;
    let sample: String = sampled.iter().map(|&i| vocab[i as usize]).collect();
    println!(
        "--- sample ({} characters, temperature {}) ---\n{sample}",
        args.sample_chars, args.temperature
    );
    Ok(())
}
