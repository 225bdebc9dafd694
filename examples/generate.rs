//! Text generation with a pretrained causal LM, streamed to the terminal.
//!
//! ```sh
//! bash scripts/fetch_assets.sh        # SmolLM2-135M-Instruct (GGUF) into ~/.cache/ember/assets
//! cargo run --release --example generate -- --prompt "Write a haiku about Rust."
//! cargo run --release --example generate -- --model path/to/hf_dir --raw --prompt "Once upon"
//! ```
//!
//! `--model` takes a GGUF file or a Hugging Face directory (`config.json`, safetensors weights,
//! `tokenizer.json`) of any architecture `AutoModelForCausalLM` supports: Llama, Mistral,
//! Qwen2, Qwen3, Gemma 3, Phi-3, GPT-2. The prompt goes through the model's own chat template
//! (GGUF metadata or `tokenizer_config.json`), ChatML when it has none but knows ChatML's
//! markers, else as raw text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use ember::cli::{exit_on_error, non_negative_f64, positive_f64, probability};
use ember::models::{
    AutoModelForCausalLM, CausalLm, ChatTemplate, Flow, GenerateOpts, TextStream, Tokenizer,
    chatml, generate_text, weight_bytes_per_token,
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
    /// The chat format when the model has none, or instead of its own: a name (chatml,
    /// gemma, llama3) or a file (.jinja or tokenizer_config.json).
    #[arg(long)]
    chat_template: Option<String>,
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
    /// Repetition penalty, once per distinct token seen, as transformers (1: none).
    #[arg(long, default_value_t = 1.1, value_parser = positive_f64)]
    repetition_penalty: f64,
    /// Ban any n-gram of this many tokens from occurring twice (0: off).
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram_size: usize,
    /// Generate at least this many tokens before an end-of-turn token may be chosen.
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Stop when the text ends in this string (repeatable).
    #[arg(long = "stop")]
    stop_strings: Vec<String>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features embergrad/wgpu`).
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

/// A model, its tokenizer and chat template (if any), loaded from a GGUF file or a Hugging
/// Face directory and quantized when asked; also the bytes of weights one decoded token reads.
fn load(
    path: &Path,
    args: &Args,
) -> Result<(AutoModelForCausalLM, Tokenizer, Option<ChatTemplate>, usize)> {
    let (device, dtype) = (args.device, args.dtype.unwrap_or(DType::F32));
    let (model, tok, template) = if path.extension().is_some_and(|e| e == "gguf") {
        let g = GgufFile::open(path)?;
        let model = match (args.dtype, args.quantize) {
            (None, None) => AutoModelForCausalLM::from_gguf(&g, device, DType::F32)?,
            _ => AutoModelForCausalLM::from_gguf_dequantized(&g, device, dtype)?,
        };
        (
            model,
            Tokenizer::from_gguf(&g)?,
            ChatTemplate::from_gguf(&g)?,
        )
    } else {
        let config = path.join("tokenizer_config.json");
        let template = match config.exists() {
            true => ChatTemplate::from_tokenizer_config(&config)?,
            false => None,
        };
        let tok = Tokenizer::from_file(path.join("tokenizer.json"))?;
        (
            AutoModelForCausalLM::from_pretrained(path, device, dtype)?,
            tok,
            template,
        )
    };
    let bytes = prepare(model.store(), args.quantize, model.tied())?;
    Ok((model, tok, template, bytes))
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
    let (model, tok, template, bytes) = load(&path, &args)?;
    eprintln!(
        "loaded {} ({}) on {} in {:.1} s; {:.1} MB of weights read per token",
        path.display(),
        model.model_type(),
        args.device,
        t0.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );

    // The model's chat template (or --chat-template), ChatML when the tokenizer knows its
    // markers, else raw text (with the tokenizer's BOS; a template writes its own).
    let template = match (&args.chat_template, template) {
        (Some(spec), _) => Some(ChatTemplate::from_name_or_file(spec)?),
        (None, None) if !args.raw => {
            eprintln!(
                "{} carries no chat template (a base model?): the prompt goes in {}; pass \
                 --chat-template with one of {} or a file",
                path.display(),
                if tok.token_id("<|im_end|>").is_some() {
                    "ChatML"
                } else {
                    "as raw text"
                },
                ChatTemplate::names().join(", ")
            );
            None
        }
        (None, t) => t,
    };
    let im_end = tok.token_id("<|im_end|>");
    let mut messages = Vec::new();
    if let Some(s) = &args.system {
        messages.push(("system", s.as_str()));
    }
    messages.push(("user", args.prompt.as_str()));
    let prompt = match (&template, im_end) {
        _ if args.raw => tok.encode(&args.prompt, true)?,
        (Some(t), _) => tok.encode(&t.render(&messages, true)?, false)?,
        (None, Some(_)) => tok.encode(&chatml(&messages, true), false)?,
        (None, None) => tok.encode(&args.prompt, true)?,
    };
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
    let markers = [
        "<|endoftext|>",
        "</s>",
        "<end_of_turn>",
        "<|eot_id|>",
        "<|end|>",
    ];
    let mut stop_tokens: Vec<i64> = markers.iter().filter_map(|m| tok.token_id(m)).collect();
    stop_tokens.extend(im_end);
    stop_tokens.extend(model.eos_ids());
    let opts = GenerateOpts {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        no_repeat_ngram_size: args.no_repeat_ngram_size,
        min_new_tokens: args.min_new_tokens,
        stop_strings: args.stop_strings.clone(),
        stop_tokens,
        seed: args.seed,
        ..Default::default()
    };

    // Stream: decode everything so far and print what is new (a character may span tokens).
    if args.raw {
        print!("{}", args.prompt);
    }
    let mut stream = TextStream::new(&tok);
    let mut first_token_at = None;
    let t0 = Instant::now();
    let out = generate_text(&model, &tok, &prompt, args.device, &opts, |t| {
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
