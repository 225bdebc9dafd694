//! The training loop a user configures rather than rewrites.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_core::{Backward, Gradients};
use ember_core::{
    Device, Error, Generator, Result, Tensor, global_state, no_grad, set_global_state,
};
use ember_nn::VarStore;
use ember_optim::{Optimizer, Schedule, clip_grad_norm};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint;
use crate::data::Batches;
use crate::plot::loss_curve;

/// What to run and where to write it.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Optimizer steps in total (a resumed run continues up to this).
    pub steps: u64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches accumulated per optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this.
    pub clip: Option<f64>,
    /// Evaluate on the validation set every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    /// Log a metrics line every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_last: usize,
    /// Output directory: `metrics.jsonl`, `loss.png`, `checkpoints/`.
    pub out_dir: PathBuf,
    /// Seed of the batch sampler.
    pub seed: u64,
    /// Device of the batches.
    pub device: Device,
    /// Print progress (a bar on a terminal, plain lines otherwise).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            batch_size: 16,
            grad_accum: 1,
            clip: Some(1.0),
            eval_every: 50,
            eval_batches: 8,
            log_every: 10,
            checkpoint_every: 0,
            keep_last: 2,
            out_dir: PathBuf::from("runs/ember"),
            seed: 0,
            device: Device::Cpu,
            progress: true,
        }
    }
}

/// What a run ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Steps done in total.
    pub steps: u64,
    /// Last training loss.
    pub train_loss: f64,
    /// Last validation loss, if a validation set was given.
    pub val_loss: Option<f64>,
    /// Training tokens per second in this process.
    pub tokens_per_s: f64,
}

/// Trains a model given as a loss function of `(inputs, targets)` batches.
pub struct Trainer<'a> {
    store: &'a VarStore,
    opt: Box<dyn Optimizer + 'a>,
    schedule: Schedule,
    cfg: TrainConfig,
    rng: Generator,
    step: u64,
    train_curve: Vec<(u64, f64)>,
    val_curve: Vec<(u64, f64)>,
}

fn u64s(v: &[u64; 4]) -> serde_json::Value {
    serde_json::Value::Array(v.iter().map(|x| x.to_string().into()).collect())
}

fn parse_u64s(v: &serde_json::Value) -> Option<[u64; 4]> {
    let a = v.as_array()?;
    let mut out = [0u64; 4];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_str()?.parse().ok()?;
    }
    Some(out)
}

fn curve(v: &serde_json::Value) -> Vec<(u64, f64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_u64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> Trainer<'a> {
    /// A trainer over the parameters of `store`, stepping `opt` with learning rates from
    /// `schedule`.
    pub fn new(
        store: &'a VarStore,
        opt: Box<dyn Optimizer + 'a>,
        schedule: Schedule,
        cfg: TrainConfig,
    ) -> Trainer<'a> {
        let rng = Generator::new(cfg.seed);
        Trainer {
            store,
            opt,
            schedule,
            cfg,
            rng,
            step: 0,
            train_curve: Vec::new(),
            val_curve: Vec::new(),
        }
    }

    /// Steps done so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Continues from a checkpoint directory (or the newest one under it): weights,
    /// optimizer state, sampler and global RNG states, step and curves.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let dir = if dir.join("trainer.json").exists() {
            dir.to_path_buf()
        } else {
            checkpoint::latest(&dir.join("checkpoints"))
                .or_else(|| checkpoint::latest(dir))
                .ok_or_else(|| {
                    Error::data("resume", format!("no checkpoint under {}", dir.display()))
                })?
        };
        let state = checkpoint::load(&dir, self.store, self.opt.as_mut())?;
        let bad = |what: &str| Error::Format {
            format: "trainer.json",
            path: dir.display().to_string(),
            msg: format!("missing or invalid {what}"),
        };
        self.step = state["step"].as_u64().ok_or_else(|| bad("step"))?;
        self.rng =
            Generator::from_saved_state(parse_u64s(&state["rng"]).ok_or_else(|| bad("rng"))?);
        set_global_state(parse_u64s(&state["global_rng"]).ok_or_else(|| bad("global_rng"))?);
        self.train_curve = curve(&state["train_curve"]);
        self.val_curve = curve(&state["val_curve"]);
        Ok(())
    }

    /// Writes a checkpoint of the current state under `out_dir/checkpoints`.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let state = serde_json::json!({
            "step": self.step,
            "rng": u64s(&self.rng.state()),
            "global_rng": u64s(&global_state()),
            "train_curve": self.train_curve.iter().map(|(s, v)| serde_json::json!([s, v])).collect::<Vec<_>>(),
            "val_curve": self.val_curve.iter().map(|(s, v)| serde_json::json!([s, v])).collect::<Vec<_>>(),
        });
        let root = self.cfg.out_dir.join("checkpoints");
        checkpoint::save(
            &root,
            self.step,
            self.store,
            self.opt.as_ref(),
            &state,
            self.cfg.keep_last,
        )
    }

    /// Mean loss over `eval_batches` validation batches (deterministic: its own generator).
    pub fn evaluate(
        &self,
        val: &dyn Batches,
        loss_fn: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<f64> {
        let _guard = no_grad();
        let was_training = self.store.is_training();
        self.store.eval();
        let mut g = Generator::new(self.cfg.seed ^ 0x5eed_0e7a1);
        let mut total = 0.0;
        for _ in 0..self.cfg.eval_batches.max(1) {
            let (x, y) = val.sample(&mut g, self.cfg.batch_size, self.cfg.device)?;
            total += loss_fn(&x, &y)?.to_scalar::<f32>()? as f64;
        }
        if was_training {
            self.store.train();
        }
        Ok(total / self.cfg.eval_batches.max(1) as f64)
    }

    fn log(&self, record: serde_json::Value) -> Result<()> {
        let path = self.cfg.out_dir.join("metrics.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{record}").map_err(|e| Error::io(&path, e))
    }

    /// Writes `out_dir/loss.png` from the curves so far.
    pub fn plot(&self) -> Result<PathBuf> {
        let path = self.cfg.out_dir.join("loss.png");
        loss_curve(&path, &self.train_curve, &self.val_curve)?;
        Ok(path)
    }

    /// Trains until `cfg.steps`, evaluating, logging and checkpointing as configured.
    pub fn fit(
        &mut self,
        train: &dyn Batches,
        val: Option<&dyn Batches>,
        loss_fn: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Summary> {
        std::fs::create_dir_all(&self.cfg.out_dir).map_err(|e| Error::io(&self.cfg.out_dir, e))?;
        let params = self.store.trainable_parameters();
        let tokens_per_step =
            (self.cfg.batch_size * train.tokens_per_row() * self.cfg.grad_accum.max(1)) as f64;
        let start = Instant::now();
        let first = self.step;
        let bar = (self.cfg.progress && std::io::stdout().is_terminal()).then(|| {
            let b = ProgressBar::new(self.cfg.steps);
            b.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed} < {eta}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_position(self.step);
            b
        });
        let (mut last_loss, mut last_val) = (f64::NAN, None);
        while self.step < self.cfg.steps {
            let lr = self.schedule.lr(self.step);
            self.opt.set_lr(lr);
            let mut grads = Gradients::default();
            let mut loss_sum = 0.0;
            let accum = self.cfg.grad_accum.max(1);
            for _ in 0..accum {
                let (x, y) = train.sample(&mut self.rng, self.cfg.batch_size, self.cfg.device)?;
                let loss = loss_fn(&x, &y)?;
                loss_sum += loss.to_scalar::<f32>()? as f64;
                let scaled = if accum > 1 {
                    loss.div_scalar(accum as f64)?
                } else {
                    loss
                };
                grads.accumulate(scaled.backward()?)?;
            }
            let grad_norm = match self.cfg.clip {
                Some(max) => clip_grad_norm(&mut grads, &params, max)?,
                None => clip_grad_norm(&mut grads, &params, f64::INFINITY)?,
            };
            self.opt.step(&grads)?;
            self.step += 1;
            last_loss = loss_sum / accum as f64;
            self.train_curve.push((self.step, last_loss));
            let elapsed = start.elapsed().as_secs_f64();
            let tps = (self.step - first) as f64 * tokens_per_step / elapsed.max(1e-9);
            if self.step.is_multiple_of(self.cfg.log_every.max(1)) || self.step == self.cfg.steps {
                self.log(serde_json::json!({
                    "step": self.step, "loss": last_loss, "ppl": last_loss.exp(), "lr": lr,
                    "grad_norm": grad_norm, "tokens_per_s": tps, "elapsed_s": elapsed,
                }))?;
                let msg = format!("loss {last_loss:.4} lr {lr:.2e} {tps:.0} tok/s");
                match &bar {
                    Some(b) => b.set_message(msg),
                    None if self.cfg.progress => {
                        println!("step {:>6}/{}  {msg}", self.step, self.cfg.steps)
                    }
                    None => {}
                }
            }
            if let Some(b) = &bar {
                b.set_position(self.step);
            }
            let eval_now = self.cfg.eval_every > 0 && self.step.is_multiple_of(self.cfg.eval_every);
            if let Some(v) = val
                && (eval_now || self.step == self.cfg.steps)
            {
                let vl = self.evaluate(v, loss_fn)?;
                last_val = Some(vl);
                self.val_curve.push((self.step, vl));
                self.log(
                    serde_json::json!({"step": self.step, "val_loss": vl, "val_ppl": vl.exp()}),
                )?;
                if bar.is_none() && self.cfg.progress {
                    println!("step {:>6}/{}  val loss {vl:.4}", self.step, self.cfg.steps);
                }
            }
            let ckpt_now = self.cfg.checkpoint_every > 0
                && self.step.is_multiple_of(self.cfg.checkpoint_every);
            if ckpt_now || self.step == self.cfg.steps {
                self.save_checkpoint()?;
            }
        }
        if let Some(b) = bar {
            b.finish();
        }
        self.plot()?;
        let elapsed = start.elapsed().as_secs_f64();
        Ok(Summary {
            steps: self.step,
            train_loss: last_loss,
            val_loss: last_val,
            tokens_per_s: (self.step - first) as f64 * tokens_per_step / elapsed.max(1e-9),
        })
    }
}
