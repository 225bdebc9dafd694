//! A character-level GPT trained from scratch: the reference trainer, read top to bottom.
//!
//! ```sh
//! bash scripts/fetch_assets.sh                  # Shakespeare's plays into ~/.cache/ember/assets
//! cargo run --release --example train_gpt       # ~6 minutes on 2 CPU cores
//! cargo run --release --example train_gpt -- --text my.txt --steps 500
//! cargo run --release --example train_gpt -- --resume runs/train_gpt --steps 4000
//! cargo run --release --example train_gpt -- --precision bf16-mixed --out runs/train_gpt_bf16
//! # data parallel on 2 MPI ranks (docs/distributed.md):
//! cargo build --release --example train_gpt --features embergrad/mpi
//! mpirun -np 2 target/release/examples/train_gpt --distributed
//! ```
//!
//! The model is nanoGPT's, `ember::models::Gpt` (pre-LayerNorm blocks, causal self-attention,
//! a 4x GELU MLP, learned positions, the output head tied to the token embedding), without
//! biases or dropout. The run directory gets `metrics.jsonl`, `loss.png`,
//! `checkpoints/step-N/`, `config.json` and `vocab.json`; it is locked while the run writes
//! it, and every file in it is written atomically. Flags are checked before anything runs
//! (sizes at least 1, heads dividing the width, finite learning rate and temperature, a
//! model and batch that fit in memory); an error prints one line and exits with status 1.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ember::cli::{exit_on_error, non_negative_f64, positive_f64};
use ember::models::{Gpt, GptConfig};
use ember::optim::{AdamW, AdamWConfig, cosine_with_warmup, decay_groups};
use ember::prelude::*;
use ember::train::{Precision, RunDir, TokenStream, TrainConfig, Trainer};

/// Train a character-level GPT on Shakespeare (or any text file).
#[derive(Parser, Debug)]
struct Args {
    /// Text to train on (default: Shakespeare's plays from the asset cache).
    #[arg(long)]
    text: Option<PathBuf>,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features embergrad/wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Run directory: metrics, plot, checkpoints, vocabulary.
    #[arg(long, default_value = "runs/train_gpt")]
    out: PathBuf,
    /// Continue the run in this directory (its vocabulary and model shape are reused).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Optimizer steps in total.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch_size: usize,
    /// Context length in characters.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    block: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    n_layer: usize,
    /// Attention heads per block (must divide --n-embd).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    n_head: usize,
    /// Model width.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    n_embd: usize,
    /// Peak learning rate (after warmup; cosine decay to a tenth of it).
    #[arg(long, default_value_t = 2e-3, value_parser = positive_f64)]
    lr: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Evaluate every this many steps.
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Validation batches per evaluation.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    eval_batches: usize,
    /// Characters to sample at the end (at most 100000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    sample_chars: u32,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.8, value_parser = non_negative_f64)]
    temperature: f64,
    /// Seed of the initialization, batches and sampling.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// f32, bf16-mixed (bf16 autocast, f32 master weights) or f16-mixed (with loss scaling).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Micro-batches accumulated per optimizer step (per rank when distributed).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    grad_accum: usize,
    /// Write a metrics line every this many steps.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    log_every: u64,
    /// Data parallel over the ranks of the MPI job that started this process (`mpirun`,
    /// `srun`; needs `--features embergrad/mpi`): each step takes `batch-size × grad-accum`
    /// sequences on every rank, and only rank 0 writes the run directory.
    #[arg(long)]
    distributed: bool,
    /// Sum gradients in rank order (the same bits on every rank for any number of ranks;
    /// with 2 ranks MPI's own sum already is).
    #[arg(long)]
    rank_order: bool,
    /// Sum the gradients after the backward instead of during it (to measure what the
    /// overlap saves).
    #[arg(long)]
    no_overlap: bool,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse().map_err(|e: ember::Error| e.to_string())
}

/// A count of at least 1.
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Checks, before anything is allocated, that the model and one training step fit in memory:
/// weights, gradients and AdamW's two moments (16 bytes per parameter), and the activations
/// autograd keeps for a batch (a rough upper estimate).
fn check_memory(cfg: &GptConfig, batch: usize, device: Device) -> Result<()> {
    let (l, c, v, t, b) = (
        cfg.n_layer as u128,
        cfg.n_embd as u128,
        cfg.vocab_size as u128,
        cfg.block_size as u128,
        batch as u128,
    );
    let params = l * 12 * c * c + (v + t) * c;
    // Per layer and token: ~40 saved values of width C and the H attention rows of length T.
    let per_token = l * (40 * c + 2 * cfg.n_head as u128 * t) + 4 * v;
    let bytes = 16 * params + 4 * b * t * per_token;
    ember::memory::check_bytes("train_gpt", Some(bytes), device, || {
        format!(
            "training a {}-layer, width-{} model on batches of {batch} × {}",
            cfg.n_layer, cfg.n_embd, cfg.block_size
        )
    })
    .map(|_| ())
}

/// A text file, after checking that it and its ids (8 bytes a character) fit in memory.
fn read_text(path: &std::path::Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    ember::memory::check_bytes("train_gpt", Some(9 * len as u128), Device::Cpu, || {
        format!("the text {} and its ids", path.display())
    })?;
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
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
    files.iter().map(|p| read_text(p)).collect()
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let group = match args.distributed {
        true => {
            let order = match args.rank_order {
                true => ember::dist::ReduceOrder::RankOrder,
                false => ember::dist::ReduceOrder::Fast,
            };
            Some(ember::dist::init(order)?)
        }
        false => None,
    };
    let main_rank = group.as_ref().is_none_or(|g| g.is_main());
    // Only rank 0 of a distributed run reports.
    macro_rules! say {
        ($($arg:tt)*) => {
            if main_rank {
                println!($($arg)*);
            }
        };
    }
    if let Some(g) = &group {
        eprintln!("rank {} of {}", g.rank(), g.world_size());
    }
    let out = args.resume.clone().unwrap_or_else(|| args.out.clone());
    if args.resume.is_some() && !out.is_dir() {
        return Err(Error::data(
            "train_gpt",
            format!(
                "--resume {}: there is no run directory there",
                out.display()
            ),
        ));
    }
    // Locked until the run ends; a distributed run's other ranks only read it.
    let run_dir = main_rank.then(|| RunDir::open(&out)).transpose()?;
    if let (Some(run_dir), None) = (&run_dir, &args.resume) {
        run_dir.check_fresh()?;
    }

    // Data: characters → ids; the first 90% trains, the rest validates.
    let text = match &args.text {
        Some(p) => read_text(p)?,
        None => default_text()?,
    };
    let vocab: Vec<char> = if args.resume.is_some() {
        RunDir::read_json_in(&out, "vocab.json")?
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
    say!(
        "{} characters, vocabulary of {} (a uniform guess scores {:.2} nats)",
        text.chars().count(),
        vocab.len(),
        (vocab.len() as f64).ln()
    );

    // Model: a fresh one, or the shape of the run being resumed.
    let cfg: GptConfig = if args.resume.is_some() {
        RunDir::read_json_in(&out, "config.json")?
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
    if cfg.vocab_size != vocab.len() {
        return Err(Error::data(
            "train_gpt",
            format!(
                "{}: config.json has a vocabulary of {} but vocab.json holds {} characters",
                out.display(),
                cfg.vocab_size,
                vocab.len()
            ),
        ));
    }
    cfg.validate()?;
    check_memory(&cfg, args.batch_size, args.device)?;
    let (train, val) = TokenStream::new(ids, cfg.block_size)?.split(0.9)?;
    if let (Some(run_dir), None) = (&run_dir, &args.resume) {
        run_dir.write_json("vocab.json", &vocab)?;
        run_dir.write_json("config.json", &cfg)?;
    }
    manual_seed(args.seed);
    let store = VarStore::with_seed(args.device, DType::F32, args.seed);
    let model = Gpt::checked(&store, cfg.clone())?; // nanoGPT's model
    say!(
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
        log_every: args.log_every,
        grad_accum: args.grad_accum,
        progress: main_rank,
        distributed: group.clone().map(|g| ember::dist::Ddp {
            overlap: !args.no_overlap,
            ..ember::dist::Ddp::new(g)
        }),
        checkpoint_every: args.eval_every,
        out_dir: out.clone(),
        seed: args.seed,
        device: args.device,
        precision: args.precision,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&store, Box::new(opt), schedule, tcfg);
    if args.resume.is_some() {
        trainer.resume(&out)?;
        say!("resumed at step {}", trainer.step());
    }

    // Train: cross-entropy of the next character at every position.
    let loss_fn = |x: &Tensor, y: &Tensor| model.loss(x, y); // over B·T positions
    let start = Instant::now();
    let summary = trainer.fit(&train, Some(&val), &loss_fn)?;
    let secs = start.elapsed().as_secs_f64();
    say!(
        "done: {} steps, train loss {:.4}, val loss {:.4}, {:.0} {}/s, {:.1} s",
        summary.steps,
        summary.train_loss,
        summary.val_loss.unwrap_or(f64::NAN),
        summary.per_s,
        summary.unit,
        secs
    );
    say!(
        "wrote {}, {} and {}",
        out.join("metrics.jsonl").display(),
        out.join("loss.png").display(),
        out.join("checkpoints").display()
    );

    if !main_rank {
        return Ok(());
    }
    // Sample: continue a newline with `sample_chars` characters.
    let mut g = Generator::new(args.seed);
    let start_id = index.get(&'\n').copied().unwrap_or(0);
    let sampled = model.sample(
        &[start_id],
        args.sample_chars as usize,
        args.temperature,
        &mut g,
    )?;
    let sample: String = sampled.iter().map(|&i| vocab[i as usize]).collect();
    say!(
        "--- sample ({} characters, temperature {}) ---\n{sample}",
        args.sample_chars,
        args.temperature
    );
    Ok(())
}
