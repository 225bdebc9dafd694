//! A multi-turn chat that keeps the model's KV cache between turns (`ChatSession`): each turn
//! prefills only its new message. Scripted turns with `--message`, else one turn per line of
//! standard input.
//!
//! ```sh
//! bash scripts/fetch_assets.sh   # SmolLM2-135M-Instruct (GGUF)
//! cargo run --release --example chat -- --message "What is the capital of France?" \
//!     --message "And of Italy?" --message "Which is larger?"
//! cargo run --release --example chat -- --no-cache ...   # re-prefill every turn, to compare
//! ```
//!
//! A model whose files carry no chat template (a base model such as the Gemma 3 270M asset)
//! is said to have none; `--chat-template gemma|chatml|llama3|FILE` gives one.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ember::cli::{exit_on_error, positive_f64};
use ember::models::{
    AutoModelForCausalLM, ChatSession, ChatTemplate, Flow, GenerateOpts, TextStream, Tokenizer,
    generate_text,
};
use ember::prelude::*;
use ember::weights::GgufFile;

/// Chat with a pretrained model over several turns (SmolLM2-135M-Instruct by default).
#[derive(Parser, Debug)]
struct Args {
    /// A .gguf file or a Hugging Face model directory (default: SmolLM2 from the asset cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A user message; repeat for several turns (none: read lines from standard input).
    #[arg(long = "message")]
    messages: Vec<String>,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// The chat format when the model has none, or instead of its own: a name
    /// (chatml, gemma, llama3) or a file (.jinja or tokenizer_config.json).
    #[arg(long)]
    chat_template: Option<String>,
    /// Tokens per reply at most.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Repetition penalty (1: none).
    #[arg(long, default_value_t = 1.0, value_parser = positive_f64)]
    repetition_penalty: f64,
    /// Re-prefill the whole conversation every turn instead of keeping the cache.
    #[arg(long)]
    no_cache: bool,
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let path = match &args.model {
        Some(p) => p.clone(),
        None => ember::assets::path(ember::assets::SMOLLM2_GGUF)?,
    };
    let (model, tok, own) = if path.extension().is_some_and(|e| e == "gguf") {
        let g = GgufFile::open(&path)?;
        let model = AutoModelForCausalLM::from_gguf(&g, Device::Cpu, DType::F32)?;
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
        let model = AutoModelForCausalLM::from_pretrained(&path, Device::Cpu, DType::F32)?;
        (
            model,
            Tokenizer::from_file(path.join("tokenizer.json"))?,
            template,
        )
    };
    let template = match (&args.chat_template, own) {
        (Some(spec), _) => ChatTemplate::from_name_or_file(spec)?,
        (None, Some(t)) => t,
        (None, None) => {
            eprintln!(
                "{} carries no chat template (a base model?): using ChatML; pass \
                 --chat-template with one of {} or a file",
                path.display(),
                ChatTemplate::names().join(", ")
            );
            ChatTemplate::named("chatml")?
        }
    };
    let markers = ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"];
    let mut stop_tokens: Vec<i64> = markers.iter().filter_map(|m| tok.token_id(m)).collect();
    stop_tokens.extend(model.eos_ids());
    let opts = GenerateOpts {
        max_new_tokens: args.max_new_tokens,
        repetition_penalty: args.repetition_penalty,
        stop_tokens,
        ..Default::default()
    };

    let mut session = ChatSession::new(&model, &tok, Some(&template), Device::Cpu);
    // Without the cache: the conversation kept here and rendered in full every turn.
    let mut history: Vec<(String, String)> = Vec::new();
    if let Some(s) = &args.system {
        session = session.with_system(s);
        history.push(("system".into(), s.clone()));
    }
    let scripted = !args.messages.is_empty();
    let mut lines = args.messages.clone().into_iter();
    let stdin = std::io::stdin();
    for turn in 1.. {
        let message = match scripted {
            true => lines.next(),
            false => {
                eprint!("> ");
                let mut line = String::new();
                let read = stdin.lock().read_line(&mut line);
                read.ok()
                    .filter(|n| *n > 0)
                    .map(|_| line.trim().to_string())
            }
        };
        let Some(message) = message else { break };
        if scripted {
            println!("> {message}");
        }
        let mut stream = TextStream::new(&tok);
        let t0 = Instant::now();
        let mut first = None;
        let mut count = 0;
        let on_token = |t: i64| {
            first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
            count += 1;
            print!("{}", stream.push(t)?);
            std::io::stdout()
                .flush()
                .map_err(|e| Error::io("stdout", e))?;
            Ok(Flow::Continue)
        };
        let prefilled = if args.no_cache {
            history.push(("user".into(), message.clone()));
            let pairs: Vec<(&str, &str)> = history
                .iter()
                .map(|(r, c)| (r.as_str(), c.as_str()))
                .collect();
            let prompt = tok.encode(&template.render(&pairs, true)?, false)?;
            let out = generate_text(&model, &tok, &prompt, Device::Cpu, &opts, on_token)?;
            history.push(("assistant".into(), tok.decode(&out, true)?));
            prompt.len()
        } else {
            session.send_with(&message, &opts, on_token)?;
            session.prefilled()[turn - 1]
        };
        println!("{}", stream.finish()?);
        let total = t0.elapsed().as_secs_f64();
        let prefill = first.unwrap_or(total);
        eprintln!(
            "turn {turn}: {prefilled} tokens prefilled in {prefill:.3} s; {count} tokens in \
             {total:.2} s"
        );
    }
    Ok(())
}
