//! Text generation with a pretrained causal LM, streamed to the terminal.
//!
//! ```sh
//! bash scripts/fetch_assets.sh        # SmolLM2-135M-Instruct (GGUF) into ~/.cache/ember/assets
//! cargo run --release --example generate -- --prompt "Write a haiku about Rust."
//! cargo run --release --example generate -- --model path/to/hf_dir --raw --prompt "Once upon"
//! ```
//!
//! `--model` takes a GGUF file (Llama architecture) or a Hugging Face directory
//! (`config.json`, safetensors weights, `tokenizer.json`; Llama-family or GPT-2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use ember::cli::{exit_on_error, non_negative_f64, positive_f64, probability};
use ember::models::{
    CausalLm, Flow, GenerateOpts, Gpt2, Llama, TextStream, Tokenizer, chatml, generate_with,
    weight_bytes_per_token,
};
use ember::nn::VarStore;
use ember::prelude::*;
use ember::quant::QFormat;
use ember::weights::GgufFile;

/// Generate text with a pretrained model (SmolLM2-135M-Instruct by default).
#[derive(Parser, Debug)]
struct Args {
    /// A .gguf file or a Hugging Face model directory (default: SmolLM2 from the asset cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The user message (or the raw text with --raw).
    #[arg(
        long,
        default_value = "What is the capital of France? Answer in one sentence."
    )]
    prompt: String,
    /// A system message for the chat template.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    temperature: f64,
    /// Nucleus sampling threshold, in (0, 1].
    #[arg(long, default_value_t = 0.9, value_parser = probability)]
    top_p: f64,
    /// Keep the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Repetition penalty (1: none).
    #[arg(long, default_value_t = 1.1, value_parser = positive_f64)]
    repetition_penalty: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features ember/wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Quantize the weight matrices after loading (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k,
    /// q5_k, q6_k); a GGUF file's quantized tensors stay as they are unless this is given.
    #[arg(long)]
    quantize: Option<QFormat>,
    /// The dtype of dense weights (f32, bf16, f16); with a GGUF file, its quantized tensors
    /// are dequantized to it.
    #[arg(long, value_parser = float_dtype)]
    dtype: Option<DType>,
}

/// Parses `f32`, `bf16` or `f16`.
fn float_dtype(s: &str) -> std::result::Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        _ => Err(format!("{s:?} is not f32, bf16 or f16")),
    }
}

/// Loads a model and its tokenizer from a GGUF file or a Hugging Face directory, quantizes it
/// when asked; also returns the bytes of weights one decoded token reads.
fn load(path: &Path, args: &Args) -> Result<(Box<dyn CausalLm>, Tokenizer, usize)> {
    let (device, dtype) = (args.device, args.dtype.unwrap_or(DType::F32));
    if path.extension().is_some_and(|e| e == "gguf") {
        let g = GgufFile::open(path)?;
        let model = match (args.dtype, args.quantize) {
            (None, None) => Llama::from_gguf(&g, device, DType::F32)?,
            _ => Llama::from_gguf_dequantized(&g, device, dtype)?,
        };
        let bytes = prepare(&model.store, args.quantize, model.cfg.tie_word_embeddings)?;
        return Ok((Box::new(model), Tokenizer::from_gguf(&g)?, bytes));
    }
    let tok = Tokenizer::from_file(path.join("tokenizer.json"))?;
    let config = std::fs::read_to_string(path.join("config.json"))
        .map_err(|e| Error::io(path.join("config.json"), e))?;
    let model_type = serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|c| c["model_type"].as_str().map(str::to_owned));
    if model_type.as_deref() == Some("gpt2") {
        let model = Gpt2::from_pretrained(path, device, dtype)?;
        let bytes = prepare(&model.store, args.quantize, true)?;
        Ok((Box::new(model), tok, bytes))
    } else {
        let model = Llama::from_pretrained(path, device, dtype)?;
        let bytes = prepare(&model.store, args.quantize, model.cfg.tie_word_embeddings)?;
        Ok((Box::new(model), tok, bytes))
    }
}

/// Quantizes `store` to `format` when given; returns the bytes of weights a decoded token
/// reads (the embedding table only when the head is tied to it).
fn prepare(store: &VarStore, format: Option<QFormat>, tied: bool) -> Result<usize> {
    if let Some(f) = format {
        let done = store.quantize(f)?;
        eprintln!("quantized {} matrices to {f}", done.len());
    }
    Ok(weight_bytes_per_token(store, tied))
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let path = match &args.model {
        Some(p) => p.clone(),
        None => ember::assets::path(ember::assets::SMOLLM2_GGUF)?,
    };
    let t0 = Instant::now();
    let (model, tok, bytes) = load(&path, &args)?;
    eprintln!(
        "loaded {} on {} in {:.1} s; {:.1} MB of weights read per token",
        path.display(),
        args.device,
        t0.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );

    // The chat template when the tokenizer knows ChatML's markers, else the raw prompt.
    let im_end = tok.token_id("<|im_end|>");
    let text = if args.raw || im_end.is_none() {
        args.prompt.clone()
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(("system", s.as_str()));
        }
        messages.push(("user", args.prompt.as_str()));
        chatml(&messages, true)
    };
    let prompt = tok.encode(&text, false)?;
    if prompt.len() > model.max_positions() {
        return Err(Error::data(
            "generate",
            format!(
                "the prompt is {} tokens, the model's context {}: shorten it",
                prompt.len(),
                model.max_positions()
            ),
        ));
    }
    let stop_tokens = [im_end, tok.token_id("<|endoftext|>"), tok.token_id("</s>")]
        .into_iter()
        .flatten()
        .collect();
    let opts = GenerateOpts {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        stop_tokens,
        seed: args.seed,
    };

    // Stream: decode everything so far and print what is new (a character may span tokens).
    if args.raw {
        print!("{}", args.prompt);
    }
    let mut stream = TextStream::new(&tok);
    let mut first_token_at = None;
    let t0 = Instant::now();
    let out = generate_with(model.as_ref(), &prompt, args.device, &opts, |t| {
        first_token_at.get_or_insert_with(|| t0.elapsed().as_secs_f64());
        print!("{}", stream.push(t)?);
        // A closed pipe (`| head`) ends generation instead of computing for nobody.
        std::io::stdout()
            .flush()
            .map_err(|e| Error::io("stdout", e))?;
        Ok(Flow::Continue)
    })?;
    print!("{}", stream.finish()?);
    let total = t0.elapsed().as_secs_f64();
    let prefill = first_token_at.unwrap_or(total);
    let decode_tokens = out.len().saturating_sub(1);
    println!();
    eprintln!(
        "{} prompt tokens in {:.2} s ({:.0} tokens/s prefill); {} new tokens, {:.1} tokens/s decode",
        prompt.len(),
        prefill,
        prompt.len() as f64 / prefill.max(1e-9),
        out.len(),
        decode_tokens as f64 / (total - prefill).max(1e-9)
    );
    let decode_rate = decode_tokens as f64 / (total - prefill).max(1e-9);
    eprintln!(
        "weights read while decoding: {:.2} GB/s",
        decode_rate * bytes as f64 / 1e9
    );
    Ok(())
}
