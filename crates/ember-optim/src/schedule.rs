//! Learning-rate schedules as pure functions of the step, composable, matching
//! `torch.optim.lr_scheduler`'s values step by step.

use std::f64::consts::PI;

use ember_core::{Error, Result};

/// A learning rate for each step (`step` counts completed optimizer steps, from 0).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `lr` forever.
    Constant(f64),
    /// `StepLR`: `lr · gamma^(step / step_size)`.
    Step {
        /// base learning rate
        lr: f64,
        /// steps between decays
        step_size: u64,
        /// decay factor
        gamma: f64,
    },
    /// `LinearLR`: the factor goes linearly from `start` to `end` over `steps`, then stays.
    Linear {
        /// base learning rate
        lr: f64,
        /// factor at step 0
        start: f64,
        /// factor from `steps` on
        end: f64,
        /// length of the ramp
        steps: u64,
    },
    /// `CosineAnnealingLR`: from `lr` down to `min_lr` over `steps` (a half cosine); like
    /// torch, it keeps following the cosine after `steps` (wrap it in `Sequential` to hold).
    Cosine {
        /// base learning rate
        lr: f64,
        /// floor
        min_lr: f64,
        /// length of the decay
        steps: u64,
    },
    /// `SequentialLR`: `first` for `switch` steps, then `then` counted from 0 again.
    Sequential {
        /// the first schedule
        first: Box<Schedule>,
        /// where the second starts
        switch: u64,
        /// the second schedule
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// Checks every rate and factor: finite, and non-negative (a learning rate, a floor, a
    /// decay factor). The error names the value.
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::data(
                    "Schedule",
                    format!("{what} {v} must be finite and non-negative"),
                ))
            }
        };
        match self {
            Schedule::Constant(lr) => check("lr", *lr),
            Schedule::Step { lr, gamma, .. } => {
                check("lr", *lr)?;
                check("gamma", *gamma)
            }
            Schedule::Linear { lr, start, end, .. } => {
                check("lr", *lr)?;
                check("start factor", *start)?;
                check("end factor", *end)
            }
            Schedule::Cosine { lr, min_lr, .. } => {
                check("lr", *lr)?;
                check("min_lr", *min_lr)
            }
            Schedule::Sequential { first, then, .. } => {
                first.validate()?;
                then.validate()
            }
        }
    }

    /// The learning rate after `step` completed steps.
    pub fn lr(&self, step: u64) -> f64 {
        match self {
            Schedule::Constant(lr) => *lr,
            Schedule::Step {
                lr,
                step_size,
                gamma,
            } => lr * gamma.powi((step / (*step_size).max(1)) as i32),
            Schedule::Linear {
                lr,
                start,
                end,
                steps,
            } => {
                let t = step.min(*steps) as f64 / (*steps).max(1) as f64;
                lr * (start + (end - start) * t)
            }
            Schedule::Cosine { lr, min_lr, steps } => {
                let t = step as f64 / (*steps).max(1) as f64;
                min_lr + (lr - min_lr) * (1.0 + (PI * t).cos()) / 2.0
            }
            Schedule::Sequential {
                first,
                switch,
                then,
            } => {
                if step < *switch {
                    first.lr(step)
                } else {
                    then.lr(step - switch)
                }
            }
        }
    }
}

/// Linear warmup from `lr / warmup` to `lr` over `warmup` steps, cosine decay to `min_lr`
/// at `total` steps, then `min_lr` (the usual LLM schedule).
pub fn cosine_with_warmup(lr: f64, warmup: u64, total: u64, min_lr: f64) -> Schedule {
    let decay = Schedule::Sequential {
        first: Box::new(Schedule::Linear {
            lr,
            start: 1.0 / warmup.max(1) as f64,
            end: 1.0,
            steps: warmup,
        }),
        switch: warmup,
        then: Box::new(Schedule::Cosine {
            lr,
            min_lr,
            steps: total.saturating_sub(warmup),
        }),
    };
    Schedule::Sequential {
        first: Box::new(decay),
        switch: total,
        then: Box::new(Schedule::Constant(min_lr)),
    }
}
