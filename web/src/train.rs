//! The character GPT of `examples/train_gpt.rs`, trained one step at a time so a page can draw
//! the loss between steps: the same data split, model, optimizer, schedule and seeds, so a run
//! here gives `train_gpt`'s losses for the same flags.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use ember::models::{Gpt, GptConfig};
use ember::optim::{AdamW, AdamWConfig, cosine_with_warmup, decay_groups};
use ember::prelude::*;
use ember::train::{TokenStream, TrainConfig, Trainer};
use serde::{Deserialize, Serialize};

/// A training run's settings: `train_gpt`'s flags of the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Optimizer steps in total (the schedule decays over them).
    pub steps: u64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Context length in characters.
    pub block: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Model width.
    pub n_embd: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup steps.
    pub warmup: u64,
    /// Seed of the initialization, batches and sampling.
    pub seed: u64,
}

/// A model small enough to learn visibly in a tab on one core.
impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 2000,
            batch_size: 8,
            block: 64,
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            lr: 2e-3,
            warmup: 100,
            seed: 1337,
        }
    }
}

impl TrainOptions {
    /// The options as `train_gpt` flags (for the native run to compare with).
    pub fn to_flags(&self) -> Vec<String> {
        let pairs = [
            ("--steps", self.steps.to_string()),
            ("--batch-size", self.batch_size.to_string()),
            ("--block", self.block.to_string()),
            ("--n-layer", self.n_layer.to_string()),
            ("--n-head", self.n_head.to_string()),
            ("--n-embd", self.n_embd.to_string()),
            ("--lr", self.lr.to_string()),
            ("--warmup", self.warmup.to_string()),
            ("--seed", self.seed.to_string()),
        ];
        pairs
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v])
            .collect()
    }

    /// Sizes bounded for a browser tab (wasm32 memory stops at 4 GiB).
    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::data("Train", msg));
        let sizes = [
            ("batch_size", self.batch_size, 512),
            ("block", self.block, 1024),
            ("n_layer", self.n_layer, 24),
            ("n_head", self.n_head, 64),
            ("n_embd", self.n_embd, 1024),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return bad(format!("{name} {value} must be between 1 and {max}"));
            }
        }
        if self.steps == 0 || self.steps > 10_000_000 {
            return bad(format!(
                "steps {} must be between 1 and 10000000",
                self.steps
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be positive", self.lr));
        }
        Ok(())
    }
}

/// A training run held between steps: the vocabulary, model, optimizer and trainer.
pub struct TrainSession {
    opts: TrainOptions,
    vocab: Vec<char>,
    index: HashMap<char, i64>,
    train: TokenStream,
    /// Borrows `*store`: dropped by hand before the store is freed.
    trainer: ManuallyDrop<Trainer<'static>>,
    model: Gpt,
    /// Owned (from `Box::into_raw`); freed in `Drop` after `trainer`.
    store: NonNull<VarStore>,
}

impl TrainSession {
    /// A fresh run on `text` (characters → ids, the first 90% trains), as `train_gpt` starts.
    pub fn new(text: &str, opts: TrainOptions) -> Result<TrainSession> {
        opts.check()?;
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let index: HashMap<char, i64> = vocab
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as i64))
            .collect();
        let ids: Vec<i64> = text
            .chars()
            .filter_map(|c| index.get(&c).copied())
            .collect();
        let cfg = GptConfig {
            vocab_size: vocab.len(),
            block_size: opts.block,
            n_layer: opts.n_layer,
            n_head: opts.n_head,
            n_embd: opts.n_embd,
            bias: false,
        };
        cfg.validate()?;
        let (train, _val) = TokenStream::new(ids, cfg.block_size)?.split(0.9)?;
        manual_seed(opts.seed);
        // The trainer borrows the store and the session owns both: the store lives on the
        // heap behind a raw pointer, freed in `Drop` after the trainer.
        let owned = Box::new(VarStore::with_seed(Device::Cpu, DType::F32, opts.seed));
        let store_ptr = NonNull::from(Box::leak(owned));
        // SAFETY: the pointer comes from a live Box that only `Drop` frees, after the trainer
        // (the one holder of this `'static` borrow) is dropped.
        let store: &'static VarStore = unsafe { store_ptr.as_ref() };
        let model = Gpt::checked(store, cfg)?;
        let groups = decay_groups(store.trainable_parameters(), 0.1);
        let opt = AdamW::with_groups(
            groups,
            AdamWConfig {
                lr: opts.lr,
                betas: (0.9, 0.99),
                ..Default::default()
            },
        );
        let schedule = cosine_with_warmup(opts.lr, opts.warmup, opts.steps, opts.lr / 10.0);
        let tcfg = TrainConfig {
            steps: opts.steps,
            batch_size: opts.batch_size,
            clip: Some(1.0),
            seed: opts.seed,
            device: Device::Cpu,
            progress: false,
            ..Default::default()
        };
        let trainer = ManuallyDrop::new(Trainer::new(store, Box::new(opt), schedule, tcfg));
        store.train();
        Ok(TrainSession {
            opts,
            vocab,
            index,
            train,
            trainer,
            model,
            store: store_ptr,
        })
    }

    /// One optimizer step: its number, loss, learning rate and gradient norm.
    pub fn step(&mut self) -> Result<ember::train::StepReport> {
        if self.done() {
            return Err(Error::data(
                "Train::step",
                format!("all {} steps are done", self.opts.steps),
            ));
        }
        let model = &self.model;
        let loss_fn = |x: &Tensor, y: &Tensor| model.loss(x, y);
        self.trainer.train_step(&self.train, &loss_fn)
    }

    /// Whether every step has run.
    pub fn done(&self) -> bool {
        self.trainer.step() >= self.opts.steps
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> u64 {
        self.trainer.step()
    }

    /// The run's options.
    pub fn options(&self) -> &TrainOptions {
        &self.opts
    }

    /// Characters in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Parameters in the model.
    pub fn parameters(&self) -> usize {
        self.store().num_parameters()
    }

    /// Tokens (characters) one step trains on.
    pub fn tokens_per_step(&self) -> usize {
        self.opts.batch_size * self.opts.block
    }

    /// `n` characters (at most 10000) sampled after a newline at `temperature` (0: greedy),
    /// with a generator seeded from the run's seed and step, so the training is not disturbed.
    pub fn sample(&self, n: usize, temperature: f64) -> Result<String> {
        if n > 10_000 || !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::data(
                "Train::sample",
                format!(
                    "{n} characters at temperature {temperature}: at most 10000, at a finite non-negative temperature"
                ),
            ));
        }
        let store = self.store();
        let was_training = store.is_training();
        store.eval();
        let mut g = Generator::new(self.opts.seed ^ self.trainer.step());
        let start = self.index.get(&'\n').copied().unwrap_or(0);
        let out = self.model.sample(&[start], n, temperature, &mut g);
        if was_training {
            store.train();
        }
        Ok(out?.iter().map(|&i| self.vocab[i as usize]).collect())
    }
}

impl TrainSession {
    /// The model's parameters.
    fn store(&self) -> &VarStore {
        // SAFETY: `store` points to the Box leaked in `new`, freed only in `Drop`.
        unsafe { self.store.as_ref() }
    }
}

impl Drop for TrainSession {
    fn drop(&mut self) {
        // SAFETY: the trainer is dropped exactly once, here, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.trainer) };
        // SAFETY: `store` came from `Box::leak` in `new`; its one borrower, the trainer, is
        // gone (the model holds parameter handles, not the store), so it is freed once.
        drop(unsafe { Box::from_raw(self.store.as_ptr()) });
    }
}
