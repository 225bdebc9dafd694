//! A tiny end-to-end training run, used by ember-train's tests (bit-exact resume in a new
//! process, crash safety under SIGKILL) and handy as a smoke test:
//!
//! `ember-train-selftest --out DIR --steps N [--checkpoint-every K] [--log-every L] [--resume]
//! [--nan-at S] [--skip-nonfinite] [--precision f32|bf16-mixed|f16-mixed]`
//!
//! Trains a one-block transformer to predict the next token of a periodic sequence and prints
//! `steps=<n> loss=<x> val_loss=<y> accuracy=<a> weights=<hash>`. `--nan-at S` makes the loss
//! of step S NaN (to test the non-finite guard). Errors print as one line on stderr and exit
//! with status 1.

use std::cell::Cell;
use std::path::PathBuf;

use ember_core::{CrossEntropyOpts, DType, Device, Generator, Result, Tensor, no_grad};
use ember_nn::{
    AttentionConfig, Block, BlockConfig, Embedding, Module, RmsNorm, VarBuilder, VarStore,
};
use ember_optim::{AdamW, AdamWConfig, cosine_with_warmup};
use ember_train::{Batches, NonFinite, Precision, TokenStream, TrainConfig, Trainer};

const VOCAB: usize = 16;
const DIM: usize = 32;
const BLOCK: usize = 12;

struct Tiny {
    wte: Embedding,
    block: Block,
    norm: RmsNorm,
}

impl Tiny {
    fn new(vb: VarBuilder) -> Result<Tiny> {
        let cfg = AttentionConfig {
            dim: DIM,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: DIM / 4,
            qkv_bias: false,
            o_bias: false,
            causal: true,
            rope: Some((10000.0, BLOCK)),
        };
        Ok(Tiny {
            wte: Embedding::new(vb.pp("model.embed_tokens"), VOCAB, DIM)?,
            block: Block::new(
                vb.pp("model.layers.0"),
                BlockConfig::llama(cfg, 2 * DIM, 1e-6),
            )?,
            norm: RmsNorm::new(vb.pp("model.norm"), DIM, 1e-6)?,
        })
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.wte.forward(x)?.mul_scalar(0.3)?; // (B, T, C)
        let h = self.norm.forward(&self.block.forward(&h)?)?;
        h.matmul(&self.wte.weight.tensor().transpose(0, 1)?) // (B, T, V), tied head
    }

    fn loss(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.logits(x)?
            .reshape(&[-1, VOCAB as isize])?
            .cross_entropy(&y.reshape(&[-1])?, CrossEntropyOpts::default())
    }
}

/// A periodic token sequence: a fixed random permutation of the vocabulary, repeated.
fn data() -> Result<(TokenStream, TokenStream)> {
    let mut g = Generator::new(42);
    let mut period: Vec<i64> = (0..VOCAB as i64).collect();
    for i in (1..period.len()).rev() {
        period.swap(i, (g.next_u64() % (i as u64 + 1)) as usize);
    }
    let tokens: Vec<i64> = period.iter().copied().cycle().take(4000).collect();
    TokenStream::new(tokens, BLOCK)?.split(0.9)
}

fn weights_hash(store: &VarStore) -> Result<u64> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (name, p) in store.named_parameters() {
        for b in name.bytes().chain(
            p.tensor()
                .to_vec::<f32>()?
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes()),
        ) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    Ok(h)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "runs/selftest".into()));
    let steps: u64 = arg("--steps").and_then(|s| s.parse().ok()).unwrap_or(60);
    let every: u64 = arg("--checkpoint-every")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let log_every: u64 = arg("--log-every")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let nan_at: Option<u64> = arg("--nan-at").and_then(|s| s.parse().ok());
    let precision: Precision = arg("--precision").as_deref().unwrap_or("f32").parse()?;
    let on_nonfinite = match args.iter().any(|a| a == "--skip-nonfinite") {
        true => NonFinite::Skip,
        false => NonFinite::Stop,
    };

    let store = VarStore::with_seed(Device::Cpu, DType::F32, 7);
    let model = Tiny::new(VarBuilder::new(&store))?;
    let opt = AdamW::new(
        store.trainable_parameters(),
        AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let cfg = TrainConfig {
        steps,
        batch_size: 8,
        eval_every: 20,
        eval_batches: 4,
        log_every,
        checkpoint_every: every,
        on_nonfinite,
        precision,
        keep_last: 2,
        out_dir: out.clone(),
        seed: 3,
        progress: false,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        &store,
        Box::new(opt),
        cosine_with_warmup(1e-2, 5, 200, 1e-3),
        cfg,
    );
    if args.iter().any(|a| a == "--resume") {
        trainer.resume(&out)?;
    }
    let (train, val) = data()?;
    // Training-mode calls of the loss are the steps (evaluation runs in eval mode).
    let step = Cell::new(trainer.step());
    let loss_fn = |x: &Tensor, y: &Tensor| {
        let loss = model.loss(x, y)?;
        if !store.is_training() {
            return Ok(loss);
        }
        step.set(step.get() + 1);
        match nan_at == Some(step.get()) {
            true => loss.mul_scalar(f64::NAN),
            false => Ok(loss),
        }
    };
    let summary = trainer.fit(&train, Some(&val), &loss_fn)?;
    // Next-token accuracy on validation windows.
    let _guard = no_grad();
    let (x, y) = val.sample(&mut Generator::new(99), 32, Device::Cpu)?;
    let pred = model.logits(&x)?.argmax(-1, false)?;
    let hits = pred.eq(&y)?.sum(&[], false)?.to_scalar::<i64>()?;
    println!(
        "steps={} loss={:.4} val_loss={:.4} accuracy={:.4} weights={:016x}",
        summary.steps,
        summary.train_loss,
        summary.val_loss.unwrap_or(f64::NAN),
        hits as f64 / y.numel() as f64,
        weights_hash(&store)?
    );
    Ok(())
}
