//! The training loop a user configures rather than rewrites.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use web_time::Instant;

use ember_core::{
    AutocastGuard, Device, Error, Generator, Result, Tensor, autocast, global_state, no_grad,
    set_global_state,
};
use ember_dist::Ddp;
use ember_nn::VarStore;
use ember_optim::{GradScaler, Optimizer, Schedule};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint;
use crate::data::Batches;
use crate::eval::{EvalReport, EvalSettings, LossFn, Validation};
use crate::plot::loss_curve;
use crate::precision::Precision;
use crate::run_dir::RunDir;

mod step;
pub use step::{StepOutcome, StepReport};

/// What a step with a non-finite loss or gradient norm does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Stop with an error naming the step (the default).
    #[default]
    Stop,
    /// Skip the update, as a loss scaler does: the weights and optimizer state stay as they
    /// were, the step still counts, and `metrics.jsonl` records `"skipped"`.
    Skip,
}

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
    /// What a step whose loss or gradient norm is NaN or infinite does.
    pub on_nonfinite: NonFinite,
    /// f32, or mixed precision with f32 master weights.
    pub precision: Precision,
    /// Data parallel (`Ddp::new(ember_dist::init(..)?)`): each step's `grad_accum ×
    /// world_size` micro-batches are drawn on every rank from the same seeded sampler, rank
    /// `r` computes those numbered `r, r + world, ...`, and the gradients are summed over the
    /// ranks (during the last backward when `overlap`); only rank 0 writes the run directory.
    /// `None`: this process alone.
    pub distributed: Option<Ddp>,
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
            on_nonfinite: NonFinite::Stop,
            precision: Precision::F32,
            distributed: None,
        }
    }
}

impl TrainConfig {
    /// Checks the sizes: at least one sequence per batch, one micro-batch per step, one
    /// checkpoint kept.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(Error::data("TrainConfig", msg.to_string()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.grad_accum == 0 {
            return bad("grad_accum must be at least 1");
        }
        if self.keep_last == 0 {
            return bad("keep_last must be at least 1");
        }
        if let Some(c) = self.clip
            && (c.is_nan() || c <= 0.0)
        {
            return bad(&format!("clip {c} must be positive (or None)"));
        }
        Ok(())
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
    /// The last evaluation's metrics (name, value), as [`crate::WholeSet`] computes them.
    pub val_metrics: Vec<(String, f64)>,
    /// Training throughput in this process, in [`Summary::unit`] per second.
    pub per_s: f64,
    /// `"tokens"` (token windows) or `"rows"` (examples), from the training source.
    pub unit: &'static str,
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
    run: Option<RunDir>,
    resumed: bool,
    /// Whether a distributed run's parameters were broadcast from rank 0 yet.
    synced: bool,
    /// Loss scaling, for `Precision::F16Mixed`.
    scaler: Option<GradScaler>,
    /// Frozen parameters beside the trained store, counted in the memory samples.
    frozen: Option<&'a VarStore>,
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
        let scaler = (cfg.precision == Precision::F16Mixed).then(GradScaler::default);
        Trainer {
            store,
            opt,
            schedule,
            cfg,
            rng,
            step: 0,
            train_curve: Vec::new(),
            val_curve: Vec::new(),
            run: None,
            resumed: false,
            synced: false,
            scaler,
            frozen: None,
        }
    }

    /// Counts `base`'s parameters too in the memory samples (the frozen model beside
    /// trained adapters).
    pub fn with_frozen(mut self, base: &'a VarStore) -> Trainer<'a> {
        self.frozen = Some(base);
        self
    }

    /// `loss_fn` on one batch, under autocast when the run is in mixed precision.
    fn forward(
        &self,
        loss_fn: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<Tensor> {
        let _scope = self.autocast_scope()?;
        loss_fn(x, y)
    }

    /// The run's autocast scope (none in f32).
    fn autocast_scope(&self) -> Result<Option<AutocastGuard>> {
        self.cfg
            .precision
            .autocast_dtype()
            .map(autocast)
            .transpose()
    }

    /// True unless this is a rank other than 0 of a distributed run (those write nothing).
    pub(crate) fn is_main(&self) -> bool {
        self.cfg
            .distributed
            .as_ref()
            .is_none_or(|d| d.group.is_main())
    }

    /// The output directory, locked for this process on first use.
    fn run_dir(&mut self) -> Result<RunDir> {
        if self.run.is_none() {
            self.run = Some(RunDir::open(&self.cfg.out_dir)?);
        }
        match &self.run {
            Some(r) => Ok(r.clone()),
            None => Err(Error::internal("Trainer", "run directory not open")),
        }
    }

    /// Keeps the records of `metrics.jsonl` up to `step` (and drops a torn last line), so a
    /// resumed run's log continues as one ordered record.
    fn truncate_metrics(&mut self, step: u64) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let run = self.run_dir()?;
        let path = run.join("metrics.jsonl");
        if !path.exists() {
            return Ok(());
        }
        // One line per logged step: a GB is millions of steps.
        let text = ember_weights::read_text(&path, 1 << 30, "metrics.jsonl")?;
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if kept != text {
            run.write("metrics.jsonl", kept.as_bytes())?;
        }
        Ok(())
    }

    /// Steps done so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Continues from a checkpoint directory (or the newest one under it): weights,
    /// optimizer state, sampler and global RNG states, step and curves.
    ///
    /// The output directory's `metrics.jsonl` is truncated to the resumed step.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        if self.is_main() {
            self.run_dir()?;
        }
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
        let saved = state["precision"].as_str().unwrap_or("f32");
        if saved != self.cfg.precision.name() {
            return Err(Error::data(
                "resume",
                format!(
                    "{} was trained in {saved}; resume it with precision {saved}, not {}",
                    dir.display(),
                    self.cfg.precision
                ),
            ));
        }
        self.rng =
            Generator::from_saved_state(parse_u64s(&state["rng"]).ok_or_else(|| bad("rng"))?);
        set_global_state(parse_u64s(&state["global_rng"]).ok_or_else(|| bad("global_rng"))?);
        if let Some(scaler) = &mut self.scaler {
            scaler.load_state(&state["grad_scaler"])?;
        }
        self.train_curve = curve(&state["train_curve"]);
        self.val_curve = curve(&state["val_curve"]);
        self.resumed = true;
        self.truncate_metrics(self.step)
    }

    /// Writes a checkpoint of the current state under `out_dir/checkpoints`.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let state = serde_json::json!({
            "step": self.step,
            "precision": self.cfg.precision.name(),
            "grad_scaler": self.scaler.as_ref().map(GradScaler::state),
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

    /// One evaluation on `val` (in eval mode, without gradients, under the run's autocast):
    /// the mean loss of `eval_batches` random batches for a [`Batches`] source (the same
    /// batches each time), or the loss and metrics over a whole [`crate::WholeSet`].
    pub fn evaluate(&self, val: &dyn Validation, loss_fn: &LossFn) -> Result<EvalReport> {
        let _guard = no_grad();
        let was_training = self.store.is_training();
        self.store.eval();
        let settings = EvalSettings {
            device: self.cfg.device,
            batch_size: self.cfg.batch_size,
            batches: self.cfg.eval_batches,
            seed: self.cfg.seed ^ 0x5eed_0e7a1,
        };
        let report = {
            let _scope = self.autocast_scope()?;
            val.evaluate(&settings, loss_fn)
        };
        if was_training {
            self.store.train();
        }
        report
    }

    /// Appends one line to `metrics.jsonl` (one write, so a kill tears at most the last
    /// line, which a resume drops).
    fn log(&self, record: serde_json::Value) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let path = self.cfg.out_dir.join("metrics.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(format!("{record}\n").as_bytes())
            .map_err(|e| Error::io(&path, e))
    }

    /// Writes `out_dir/loss.png` from the curves so far.
    pub fn plot(&self) -> Result<PathBuf> {
        let path = self.cfg.out_dir.join("loss.png");
        loss_curve(&path, &self.train_curve, &self.val_curve)?;
        Ok(path)
    }

    /// Trains until `cfg.steps` in training mode (dropout on, as transformers' Trainer), evaluating,
    /// logging and checkpointing as configured.
    ///
    /// The output directory is locked for the run ([`RunDir`]). A fresh run (not resumed)
    /// refuses a directory that holds an earlier run's checkpoints and starts a new
    /// `metrics.jsonl`. A step whose loss or gradient norm is not finite stops the run with an
    /// error naming it, or is skipped ([`NonFinite`]); so is a learning rate that is not
    /// finite and non-negative.
    pub fn fit(
        &mut self,
        train: &dyn Batches,
        val: Option<&dyn Validation>,
        loss_fn: &LossFn,
    ) -> Result<Summary> {
        self.cfg.validate()?;
        self.schedule.validate()?;
        if self.step >= self.cfg.steps {
            return Err(Error::data(
                "Trainer::fit",
                format!(
                    "nothing to do: the run is at step {} and steps is {}",
                    self.step, self.cfg.steps
                ),
            ));
        }
        if self.is_main() {
            let run = self.run_dir()?;
            if self.step == 0 && !self.resumed {
                run.check_fresh()?;
                self.truncate_metrics(0)?;
            }
        }
        // Training mode, as transformers' Trainer sets it (a pretrained model loads in eval
        // mode); evaluations switch to eval and back.
        self.store.train();
        let world = self
            .cfg
            .distributed
            .as_ref()
            .map_or(1, |d| d.group.world_size());
        let units_per_step =
            (self.cfg.batch_size * train.tokens_per_row() * self.cfg.grad_accum.max(1) * world)
                as f64;
        let unit = train.unit();
        let (per_s_key, short) = match unit {
            "rows" => ("rows_per_s", "rows/s"),
            _ => ("tokens_per_s", "tok/s"),
        };
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
        let (mut last_loss, mut last_val) = (f64::NAN, None::<EvalReport>);
        while self.step < self.cfg.steps {
            let report = self.train_step(train, loss_fn)?;
            let (lr, loss, grad_norm) = (report.lr, report.loss, report.grad_norm);
            let finite = report.outcome != StepOutcome::NonFinite;
            if finite {
                last_loss = loss;
            }
            match report.outcome {
                StepOutcome::Applied => {}
                StepOutcome::Overflow { loss_scale } => self.log(serde_json::json!({
                    "step": self.step, "skipped": "gradient overflow under loss scaling",
                    "loss": loss, "loss_scale": loss_scale, "lr": lr,
                }))?,
                StepOutcome::NonFinite => self.log(serde_json::json!({
                    "step": self.step, "skipped": "non-finite loss or gradient norm",
                    "loss": loss, "grad_norm": grad_norm, "lr": lr,
                }))?,
            }
            let elapsed = start.elapsed().as_secs_f64();
            let tps = (self.step - first) as f64 * units_per_step / elapsed.max(1e-9);
            let log_now = self.step.is_multiple_of(self.cfg.log_every.max(1));
            if finite && (log_now || self.step == self.cfg.steps) {
                let mut record = serde_json::json!({
                    "step": self.step, "loss": last_loss, "ppl": last_loss.exp(), "lr": lr,
                    "grad_norm": grad_norm, per_s_key: tps, "elapsed_s": elapsed,
                });
                if self.cfg.distributed.is_some() {
                    // The time this step waited for gradient sums (rank 0's).
                    record["comm_wait_s"] = serde_json::json!(report.comm_wait_s);
                }
                self.log(record)?;
                let msg = format!("loss {last_loss:.4} lr {lr:.2e} {tps:.0} {short}");
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
                let report = self.evaluate(v, loss_fn)?;
                let vl = report.loss;
                self.val_curve.push((self.step, vl));
                let mut record = serde_json::json!({"step": self.step, "val_loss": vl,
                    "val_ppl": vl.exp(), "val_rows_per_s": report.rows_per_s});
                for (k, v) in crate::usage::peak_fields(self.cfg.device)
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    record[k] = v.clone();
                }
                let mut shown = format!("val loss {vl:.4}");
                for (name, value) in &report.metrics {
                    record[format!("val_{name}")] = serde_json::json!(value);
                    shown.push_str(&format!(" {name} {value:.4}"));
                }
                self.log(record)?;
                if bar.is_none() && self.cfg.progress {
                    println!("step {:>6}/{}  {shown}", self.step, self.cfg.steps);
                }
                last_val = Some(report);
            }
            let ckpt_now = self.cfg.checkpoint_every > 0
                && self.step.is_multiple_of(self.cfg.checkpoint_every);
            if (ckpt_now || self.step == self.cfg.steps) && self.is_main() {
                self.save_checkpoint()?;
            }
        }
        if let Some(b) = bar {
            b.finish();
        }
        if let Some(d) = &self.cfg.distributed {
            // DDP keeps the ranks' weights equal by construction; a check costs one hash.
            let params = self.store.trainable_parameters();
            ember_dist::ddp::check_parameters_equal(&params, d.group.as_ref())?;
        }
        if self.is_main() {
            self.plot()?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        Ok(Summary {
            steps: self.step,
            train_loss: last_loss,
            val_loss: last_val.as_ref().map(|r| r.loss),
            val_metrics: last_val.map(|r| r.metrics).unwrap_or_default(),
            per_s: (self.step - first) as f64 * units_per_step / elapsed.max(1e-9),
            unit,
        })
    }
}
