//! Sentence embeddings and their cosine-similarity matrix with all-MiniLM-L6-v2.
//!
//! ```sh
//! bash scripts/fetch_assets.sh        # all-MiniLM-L6-v2 into ~/.cache/ember/assets
//! cargo run --release --example embed
//! cargo run --release --example embed -- "The cat sleeps." "A kitten naps." "Stocks fell."
//! ```

use std::path::PathBuf;

use clap::Parser;
use ember::cli::exit_on_error;
use ember::models::{Bert, Tokenizer};
use ember::prelude::*;

/// Embed sentences with a BERT sentence-transformer and print how similar they are.
#[derive(Parser, Debug)]
struct Args {
    /// Sentences to compare (default: a few examples).
    sentences: Vec<String>,
    /// A Hugging Face BERT directory (default: all-MiniLM-L6-v2 from the asset cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// cpu, wgpu or wgpu:N (wgpu needs `--features embergrad/wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let dir = match &args.model {
        Some(p) => p.clone(),
        None => ember::assets::path("minilm")?,
    };
    let sentences: Vec<String> = if args.sentences.is_empty() {
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
            "A man is riding a horse.",
            "A woman is playing violin.",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.sentences.clone()
    };

    let model = Bert::from_pretrained(&dir, args.device, DType::F32)?;
    let tok = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let (ids, mask) = tok.encode_batch(&texts, true, 0, args.device)?; // (N, T) each, padded
    let emb = {
        let _no_grad = no_grad();
        model.embed(&ids, &mask)? // (N, D), unit-length rows
    };
    let sim = emb.matmul(&emb.transpose(0, 1)?)?; // (N, N) cosine similarities
    let n = sentences.len();
    let values = sim.to_vec::<f32>()?;

    println!(
        "{} sentences, {}-dimensional embeddings from {}\n",
        n,
        emb.dims()[1],
        dir.display()
    );
    for (i, s) in sentences.iter().enumerate() {
        println!("[{i}] {s}");
    }
    print!("\n     ");
    for j in 0..n {
        print!("  [{j}] ");
    }
    println!();
    for i in 0..n {
        print!("[{i}] ");
        for j in 0..n {
            print!(" {:5.3}", values[i * n + j]);
        }
        println!();
    }
    // The most similar distinct pair.
    let (mut best, mut pair) = (f32::NEG_INFINITY, (0, 0));
    for i in 0..n {
        for j in i + 1..n {
            if values[i * n + j] > best {
                best = values[i * n + j];
                pair = (i, j);
            }
        }
    }
    if n > 1 {
        println!(
            "\nmost similar: [{}] and [{}] (cos {best:.4})",
            pair.0, pair.1
        );
    }
    Ok(())
}
