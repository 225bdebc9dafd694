//! A PyTorch user's first week in one program: a custom encoder classifier built from
//! `Block`, trained with a `Trainer` and evaluated over its whole validation set with
//! accuracy; MiniLM sentence embeddings; SmolLM2 streaming text as it is generated.
//!
//! ```sh
//! bash scripts/fetch_assets.sh   # MiniLM and SmolLM2 into ~/.cache/ember/assets
//! cargo run --release --example first_week
//! cargo run --release --example first_week -- --only classifier   # no downloads needed
//! ```

use clap::Parser;
use ember::cli::exit_on_error;
use ember::models::{
    Bert, Flow, GenerateOpts, Llama, TextStream, Tokenizer, chatml, generate_with,
};
use ember::nn::{AttentionConfig, Block, BlockConfig, Embedding, Linear, Module};
use ember::optim::{AdamW, AdamWConfig, cosine_with_warmup};
use ember::prelude::*;
use ember::train::{Accuracy, Dataset, Sampled, TrainConfig, Trainer, WholeSet};

/// Runs the three first-week tasks.
#[derive(Parser, Debug)]
struct Args {
    /// `classifier`, `embeddings` or `stream` (default: all three).
    #[arg(long)]
    only: Option<String>,
    /// Training steps of the classifier.
    #[arg(long, default_value_t = 150)]
    steps: u64,
    /// Tokens to stream from SmolLM2.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
}

fn main() {
    exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let wants = |task: &str| args.only.as_deref().is_none_or(|o| o == task);
    if wants("classifier") {
        classifier(args.steps)?;
    }
    if wants("embeddings") {
        embeddings()?;
    }
    if wants("stream") {
        stream(args.max_new_tokens)?;
    }
    Ok(())
}

const VOCAB: usize = 8;
const LEN: usize = 12;

/// Sequences of 12 tokens; the label says whether token 1 occurs more often than token 2.
struct Counting {
    rows: usize,
    seed: u64,
}

impl Dataset for Counting {
    fn len(&self) -> usize {
        self.rows
    }

    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
        let mut g = Generator::new(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let ids = Tensor::randint_with(&mut g, 0, VOCAB as i64, &[LEN], device)?; // (T,)
        let ones = ids.eq_scalar(1.0)?.sum(&[], false)?;
        let twos = ids.eq_scalar(2.0)?.sum(&[], false)?;
        Ok((ids, ones.gt(&twos)?.to_dtype(DType::I64)?))
    }
}

/// Token embeddings, one BERT-style block, the first position's state into a linear head.
struct Classifier {
    tokens: Embedding,
    positions: Embedding,
    block: Block,
    head: Linear,
}

impl Classifier {
    fn new(vb: VarBuilder) -> Result<Classifier> {
        let dim = 32;
        let attention = AttentionConfig {
            dim,
            n_heads: 4,
            n_kv_heads: 4,
            head_dim: 8,
            qkv_bias: true,
            o_bias: true,
            causal: false,
            rope: None,
        };
        Ok(Classifier {
            tokens: Embedding::new(vb.pp("tokens"), VOCAB, dim)?,
            positions: Embedding::new(vb.pp("positions"), LEN, dim)?,
            block: Block::new(vb.pp("layers.0"), BlockConfig::bert(attention, 64, 0.1))?,
            head: Linear::new(vb.pp("head"), dim, 2, true)?,
        })
    }

    /// `(B, T)` ids → `(B, 2)` logits.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let pos = Tensor::arange(0.0, LEN as f64, 1.0, DType::I64, ids.device())?;
        let h = self
            .tokens
            .forward(ids)?
            .add(&self.positions.forward(&pos)?)?; // (B, T, C)
        let h = self.block.forward(&h)?;
        self.head.forward(&h.i((.., 0))?) // h[:, 0]: (B, C)
    }
}

fn classifier(steps: u64) -> Result<()> {
    println!("== a custom encoder classifier");
    let store = VarStore::with_seed(Device::Cpu, DType::F32, 0);
    let model = Classifier::new(VarBuilder::new(&store))?;
    let forward = |x: &Tensor| model.forward(x);
    let criterion = |out: &Tensor, y: &Tensor| out.cross_entropy(y, CrossEntropyOpts::default());
    let loss_fn = |x: &Tensor, y: &Tensor| criterion(&forward(x)?, y);
    let val = WholeSet::new(Counting { rows: 256, seed: 2 }, &forward, &criterion)
        .metric(Accuracy::default());
    let out = std::env::temp_dir().join(format!("ember-first-week-{}", std::process::id()));
    let cfg = TrainConfig {
        steps,
        batch_size: 32,
        eval_every: steps.div_ceil(3),
        out_dir: out.clone(),
        progress: true,
        log_every: steps.div_ceil(3),
        ..Default::default()
    };
    let opt = AdamW::new(
        store.trainable_parameters(),
        AdamWConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let schedule = cosine_with_warmup(3e-3, 10, steps, 3e-4);
    let mut trainer = Trainer::new(&store, Box::new(opt), schedule, cfg);
    let train = Sampled(Counting {
        rows: 4096,
        seed: 1,
    });
    let summary = trainer.fit(&train, Some(&val), &loss_fn)?;
    let accuracy = summary.val_metrics.first().map_or(f64::NAN, |m| m.1);
    println!(
        "classifier: {} steps, val loss {:.4}, val accuracy {accuracy:.3}, {:.0} {}/s",
        summary.steps,
        summary.val_loss.unwrap_or(f64::NAN),
        summary.per_s,
        summary.unit
    );
    std::fs::remove_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    Ok(())
}

fn embeddings() -> Result<()> {
    println!("== MiniLM sentence embeddings");
    let dir = ember::assets::path("minilm")?;
    let model = Bert::from_pretrained(&dir, Device::Cpu, DType::F32)?;
    let tok = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let texts = [
        "A cat sleeps on the sofa.",
        "A kitten naps on a couch.",
        "Stocks fell.",
    ];
    let (ids, mask) = tok.encode_batch(&texts, true, 0, Device::Cpu)?; // (3, T) each
    let emb = {
        let _no_grad = no_grad();
        model.embed(&ids, &mask)? // (3, 384), unit rows
    };
    let sim = emb.matmul(&emb.transpose(0, 1)?)?; // (3, 3) cosine similarities
    let close = sim.i((0, 1))?.to_scalar::<f32>()?;
    let far = sim.i((0, 2))?.to_scalar::<f32>()?;
    println!("similarity: cat/kitten {close:.3}, cat/stocks {far:.3}");
    Ok(())
}

fn stream(max_new_tokens: usize) -> Result<()> {
    println!("== SmolLM2 streaming");
    let g = ember::GgufFile::open(ember::assets::path(ember::assets::SMOLLM2_GGUF)?)?;
    let model = Llama::from_gguf(&g, Device::Cpu, DType::F32)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let text = chatml(
        &[(
            "user",
            "Say « bonjour » in French and explain it in one line.",
        )],
        true,
    );
    let prompt = tok.encode(&text, false)?;
    let stop = tok.token_id("<|im_end|>");
    let opts = GenerateOpts {
        max_new_tokens,
        ..Default::default()
    };
    let mut pieces = TextStream::new(&tok);
    let mut streamed = String::new();
    let ids = generate_with(&model, &prompt, Device::Cpu, &opts, |t| {
        if Some(t) == stop {
            return Ok(Flow::Stop);
        }
        let piece = pieces.push(t)?; // whole characters only, never U+FFFD
        print!("{piece}");
        streamed.push_str(&piece);
        Ok(Flow::Continue)
    })?;
    let rest = pieces.finish()?;
    println!("{rest}");
    streamed.push_str(&rest);
    let answer: Vec<i64> = ids.into_iter().filter(|&t| Some(t) != stop).collect();
    let full = tok.decode(&answer, true)?;
    println!("streamed text equals the full decode: {}", streamed == full);
    Ok(())
}
