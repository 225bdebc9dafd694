//! One optimizer step of [`Trainer`], without the run directory: what [`Trainer::fit`] does
//! per step, callable on its own where a loop of one's own drives training (a browser tab
//! stepping between messages, a notebook).

use ember_core::{Backward, Error, Gradients, Result};

use ember_optim::clip_grad_norm;

use super::{NonFinite, Trainer};
use crate::data::Batches;
use crate::eval::LossFn;

/// What became of a step's update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutcome {
    /// The optimizer stepped.
    Applied,
    /// Loss scaling saw overflowing gradients: the update was skipped and the scale backed off
    /// to `loss_scale`.
    Overflow {
        /// The scale after backing off.
        loss_scale: f64,
    },
    /// The loss or gradient norm was not finite and [`NonFinite::Skip`] skipped the update.
    NonFinite,
}

/// One step's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Steps done, this one included.
    pub step: u64,
    /// Mean loss over the step's micro-batches.
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether the update was applied.
    pub outcome: StepOutcome,
    /// Seconds spent waiting for the gradient sums of a distributed step (0 in one process):
    /// with overlap, what the backward did not hide.
    pub comm_wait_s: f64,
}

impl Trainer<'_> {
    /// One optimizer step on `grad_accum` micro-batches drawn from `train` with the trainer's
    /// sampler: the same numbers as the step [`Trainer::fit`] would take next, but nothing is
    /// logged or written and the training/eval mode is left as it is (call
    /// [`ember_nn::VarStore::train`] first for dropout).
    ///
    /// A step whose loss or gradient norm is not finite is an error under
    /// [`NonFinite::Stop`] (the weights and the step count unchanged), skipped under
    /// [`NonFinite::Skip`]; a learning rate that is not finite and non-negative is an error.
    pub fn train_step(&mut self, train: &dyn Batches, loss_fn: &LossFn) -> Result<StepReport> {
        self.cfg.validate()?;
        let lr = self.schedule.lr(self.step);
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::data(
                "Trainer::train_step",
                format!(
                    "step {}: the schedule gives learning rate {lr}",
                    self.step + 1
                ),
            ));
        }
        self.opt.set_lr(lr);
        let params = self.store.trainable_parameters();
        let mut grads = Gradients::default();
        let mut loss_sum = 0.0;
        let ddp = self.cfg.distributed.clone();
        let group = ddp.as_ref().map(|d| d.group.clone());
        let (rank, world) = group
            .as_ref()
            .map_or((0, 1), |g| (g.rank(), g.world_size()));
        if let Some(g) = &group
            && !self.synced
        {
            // DDP's start: rank 0's weights everywhere, checked.
            ember_dist::ddp::broadcast_parameters(&params, g.as_ref())?;
            self.synced = true;
        }
        let mut comm_wait = web_time::Duration::ZERO;
        let mut reduced = false;
        // Every rank draws all the step's micro-batches (the sampler stays in step) and
        // computes its own: as one process accumulating `accum × world` of them.
        let accum = self.cfg.grad_accum.max(1) * world;
        for j in 0..accum {
            let (x, y) = train.sample(&mut self.rng, self.cfg.batch_size, self.cfg.device)?;
            if j % world != rank {
                continue;
            }
            let loss = self.forward(loss_fn, &x, &y)?;
            let dev = self.cfg.device;
            let (opt, frozen) = (self.opt.as_ref(), self.frozen);
            crate::usage::sample(dev, [Some(self.store), frozen], opt, Some(&loss), &grads);
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let mut scaled = if accum > 1 {
                loss.div_scalar(accum as f64)?
            } else {
                loss
            };
            if let Some(scaler) = &self.scaler {
                scaled = scaler.scale(&scaled)?;
            }
            match &ddp {
                // The rank's last micro-batch: gradients summed over the ranks as they
                // complete, during the backward.
                Some(d) if d.overlap && j + world >= accum => {
                    let earlier = std::mem::take(&mut grads);
                    let mut reducer = ember_dist::Reducer::new(
                        &params,
                        d.group.as_ref(),
                        d.bucket_bytes,
                        earlier,
                    );
                    let local =
                        scaled.backward_with_hook(&mut |leaf, g| reducer.on_final(leaf, g))?;
                    let (summed, waited) = reducer.finish(local)?;
                    (grads, comm_wait, reduced) = (summed, waited, true);
                }
                _ => grads.accumulate(scaled.backward()?)?,
            }
        }
        if let (Some(d), false) = (&ddp, reduced) {
            let started = web_time::Instant::now();
            ember_dist::ddp::all_reduce_gradients(
                &mut grads,
                &params,
                d.group.as_ref(),
                d.bucket_bytes,
            )?;
            comm_wait = started.elapsed();
        }
        if let Some(g) = &group {
            let mut total = [loss_sum];
            g.all_reduce_sum_f64(&mut total)?;
            loss_sum = total[0];
        }
        let (opt, frozen) = (self.opt.as_ref(), self.frozen);
        crate::usage::sample(
            self.cfg.device,
            [Some(self.store), frozen],
            opt,
            None,
            &grads,
        );
        if let Some(scaler) = &mut self.scaler {
            scaler.unscale(&mut grads, &params)?; // before clipping, as torch
        }
        let grad_norm =
            clip_grad_norm(&mut grads, &params, self.cfg.clip.unwrap_or(f64::INFINITY))?;
        let loss = loss_sum / accum as f64;
        // An overflow under loss scaling is the scaler's business: skip and back off.
        let overflow = self.scaler.is_some() && loss.is_finite() && !grad_norm.is_finite();
        let finite = loss.is_finite() && (grad_norm.is_finite() || overflow);
        if !finite && self.cfg.on_nonfinite == NonFinite::Stop {
            return Err(Error::data(
                "Trainer::fit",
                format!(
                    "step {}: the loss is {loss} and the gradient norm {grad_norm}; the \
                     weights are unchanged since step {} (lower the learning rate, check \
                     the data, or set on_nonfinite: NonFinite::Skip)",
                    self.step + 1,
                    self.step
                ),
            ));
        }
        self.step += 1;
        // With loss scaling, the scaler decides: it skips a step whose gradients overflowed
        // and backs off.
        let outcome = match &mut self.scaler {
            Some(scaler) => {
                let stepped = finite && scaler.step(self.opt.as_mut(), &grads)?;
                scaler.update();
                match (finite, stepped) {
                    (false, _) => StepOutcome::NonFinite,
                    (true, true) => StepOutcome::Applied,
                    (true, false) => StepOutcome::Overflow {
                        loss_scale: scaler.scale_value(),
                    },
                }
            }
            None if finite => {
                self.opt.step(&grads)?;
                StepOutcome::Applied
            }
            None => StepOutcome::NonFinite,
        };
        if finite {
            self.train_curve.push((self.step, loss));
        }
        Ok(StepReport {
            step: self.step,
            loss,
            lr,
            grad_norm,
            outcome,
            comm_wait_s: comm_wait.as_secs_f64(),
        })
    }
}
