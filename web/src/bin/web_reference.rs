//! Native reference numbers for the browser tests (`web/tests/e2e.mjs`): the embedding of a
//! fixed sentence, the best speech for a query, 50 training steps' losses and the chat reply,
//! all computed here by the same Rust code the page runs, on the assets the page serves.
//!
//! ```sh
//! cargo run -p embergrad-web --bin web-reference -- web/dist/assets web/dist/reference.json
//! # and check the trainer against `train_gpt`'s log of the same run:
//! cargo run -p embergrad-web --bin web-reference -- web/dist/assets out.json --train-gpt-metrics runs/x/metrics.jsonl
//! ```

use std::path::{Path, PathBuf};

use ember::{Device, Error};
use ember_web::chat::ChatModel;
use ember_web::search::{SearchIndex, split_speeches};
use ember_web::train::{TrainOptions, TrainSession};

const SENTENCE: &str = "A man is eating food.";
const QUERY: &str = "whether it is nobler to suffer or to take arms and end one's life";
const QUESTION: &str = "What is the capital of France?";
/// Minimum words of a speech the search panel keeps (the page uses the same).
const MIN_WORDS: usize = 40;
const TRAIN_STEPS: u64 = 50;

fn read(path: &Path) -> ember::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn text(path: &Path) -> ember::Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

fn run() -> ember::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        Error::data(
            "web-reference",
            "usage: web-reference ASSETS_DIR OUT.json [--train-gpt-metrics metrics.jsonl]",
        )
    };
    let (assets, out) = match (args.first(), args.get(1)) {
        (Some(a), Some(o)) => (PathBuf::from(a), PathBuf::from(o)),
        _ => return Err(usage()),
    };
    let metrics = match args.get(2).map(String::as_str) {
        Some("--train-gpt-metrics") => Some(PathBuf::from(args.get(3).ok_or_else(usage)?)),
        Some(_) => return Err(usage()),
        None => None,
    };

    // Search: one sentence's embedding, and the best speech of Hamlet for a query.
    let minilm = assets.join("minilm");
    let mut index = SearchIndex::new(
        &read(&minilm.join("config.json"))?,
        read(&minilm.join("model.safetensors"))?,
        &read(&minilm.join("tokenizer.json"))?,
        Device::Cpu,
    )?;
    let embedding = index.embed(&[SENTENCE])?;
    let speeches = split_speeches(&text(&assets.join("hamlet.txt"))?, MIN_WORDS);
    let texts: Vec<&str> = speeches.iter().map(|s| s.text.as_str()).collect();
    let started = std::time::Instant::now();
    for chunk in texts.chunks(8) {
        index.add(chunk)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "search: embedded {} speeches in batches of 8 in {secs:.2} s ({:.1} passages/s natively)",
        texts.len(),
        texts.len() as f64 / secs
    );
    let top = index.rank(QUERY, 3)?;
    let best = &speeches[top[0].index];
    println!(
        "search: {} speeches; best for {QUERY:?}: #{} ({}, {:.4}) {:.60}...",
        speeches.len(),
        top[0].index,
        best.speaker,
        top[0].score,
        best.text
    );

    // Training: the first 50 steps of a 50-step run.
    let opts = TrainOptions {
        steps: TRAIN_STEPS,
        ..Default::default()
    };
    let mut session = TrainSession::new(&text(&assets.join("shakespeare.txt"))?, opts.clone())?;
    let mut losses = Vec::new();
    while !session.done() {
        losses.push(session.step()?.loss);
    }
    println!(
        "train: {} steps, loss {:.4} -> {:.4}",
        losses.len(),
        losses[0],
        losses[losses.len() - 1]
    );
    if let Some(path) = metrics {
        compare_with_train_gpt(&path, &losses)?;
    }

    // Chat: one greedy reply.
    let chat = ChatModel::from_gguf_bytes(read(&assets.join("smollm2.gguf"))?)?;
    let mut conversation = chat.session(ember_web::chat::DEFAULT_SYSTEM)?;
    let reply = chat.send(&mut conversation, QUESTION, 32, |_| Ok(()))?;
    println!("chat: {QUESTION:?} -> {reply:?}");

    let json = serde_json::json!({
        "sentence": SENTENCE,
        "embedding": embedding,
        "search": {
            "query": QUERY, "min_words": MIN_WORDS, "speeches": speeches.len(),
            "top_index": top[0].index, "top_speaker": best.speaker, "top_text_start": best.text.chars().take(60).collect::<String>(),
        },
        "train": {"options": opts, "flags": opts.to_flags(), "losses": losses},
        "chat": {"question": QUESTION, "system": ember_web::chat::DEFAULT_SYSTEM, "max_new_tokens": 32, "reply": reply},
    });
    std::fs::write(&out, json.to_string()).map_err(|e| Error::io(&out, e))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The losses `train_gpt` logged (every 10 steps) must be these losses, bit for bit.
fn compare_with_train_gpt(path: &Path, losses: &[f64]) -> ember::Result<()> {
    let mut checked = 0;
    for line in text(path)?.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::data("web-reference", e.to_string()))?;
        let (Some(step), Some(loss)) = (v["step"].as_u64(), v["loss"].as_f64()) else {
            continue;
        };
        let ours = losses.get(step as usize - 1).copied().unwrap_or(f64::NAN);
        if ours.to_bits() != loss.to_bits() {
            return Err(Error::data(
                "web-reference",
                format!("step {step}: train_gpt logged loss {loss:?}, the web trainer {ours:?}"),
            ));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(Error::data(
            "web-reference",
            format!("{}: no losses logged", path.display()),
        ));
    }
    println!(
        "train: the web trainer's losses equal train_gpt's at its {checked} logged steps, bit for bit"
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
