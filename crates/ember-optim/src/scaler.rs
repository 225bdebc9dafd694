//! Loss scaling for f16 training, as `torch.amp.GradScaler`: the loss is multiplied by a
//! large scale before the backward pass so small f16 gradients do not flush to zero; the
//! gradients are divided by it again before clipping and the update; a step whose gradients
//! overflowed is skipped and the scale backs off, and after `growth_interval` clean steps it
//! grows. (bf16 has f32's range and needs no scaler.)
//!
//! ```
//! use ember_core::{Backward, DType, Device, Tensor};
//! use ember_nn::{Init, VarBuilder, VarStore};
//! use ember_optim::{GradScaler, GradScalerConfig, Sgd, SgdConfig, clip_grad_norm};
//! let store = VarStore::new(Device::Cpu, DType::F32);
//! let w = VarBuilder::new(&store).get("w", &[2], Init::Ones)?;
//! let mut opt = Sgd::new(vec![w.clone()], SgdConfig::default());
//! let mut scaler = GradScaler::new(GradScalerConfig::default())?;
//! let loss = w.tensor().square()?.sum(&[], false)?;
//! let mut grads = scaler.scale(&loss)?.backward()?;
//! scaler.unscale(&mut grads, &[w.clone()])?; // before clipping, as torch
//! clip_grad_norm(&mut grads, &[w.clone()], 1.0)?;
//! assert!(scaler.step(&mut opt, &grads)?); // finite gradients: the update ran
//! scaler.update();
//! assert_eq!(scaler.scale_value(), 65536.0);
//! # Ok::<(), ember_core::Error>(())
//! ```

use ember_core::{DType, Error, Gradients, Result, Tensor, no_grad};
use ember_nn::Param;

use crate::Optimizer;

/// `torch.amp.GradScaler`'s settings; `Default` is torch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScalerConfig {
    /// The first scale (2^16).
    pub init_scale: f64,
    /// Factor the scale grows by after `growth_interval` clean steps (2).
    pub growth_factor: f64,
    /// Factor the scale shrinks by after a step with a non-finite gradient (0.5).
    pub backoff_factor: f64,
    /// Clean steps before the scale grows (2000).
    pub growth_interval: u64,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl GradScalerConfig {
    /// Checks the settings as torch does: a positive finite scale, growth above 1, backoff in
    /// (0, 1), an interval of at least one step.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::data("GradScalerConfig", msg));
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return bad(format!(
                "init_scale {} must be positive and finite",
                self.init_scale
            ));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return bad(format!(
                "growth_factor {} must be above 1",
                self.growth_factor
            ));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return bad(format!(
                "backoff_factor {} must lie in (0, 1)",
                self.backoff_factor
            ));
        }
        if self.growth_interval == 0 {
            return bad("growth_interval must be at least 1".into());
        }
        Ok(())
    }
}

/// Dynamic loss scaling. Per step: [`scale`](GradScaler::scale) the loss, backward,
/// [`unscale`](GradScaler::unscale) (before clipping), [`step`](GradScaler::step),
/// [`update`](GradScaler::update). The scale is kept in f32, as torch keeps it.
#[derive(Debug, Clone)]
pub struct GradScaler {
    cfg: GradScalerConfig,
    scale: f32,
    growth_tracker: u64,
    /// Whether this step's gradients were unscaled, and whether one was not finite.
    unscaled: Option<bool>,
}

impl Default for GradScaler {
    /// torch's defaults ([`GradScalerConfig::default`]).
    fn default() -> Self {
        let cfg = GradScalerConfig::default();
        GradScaler {
            cfg,
            scale: cfg.init_scale as f32,
            growth_tracker: 0,
            unscaled: None,
        }
    }
}

impl GradScaler {
    /// A scaler at `cfg.init_scale`.
    pub fn new(cfg: GradScalerConfig) -> Result<GradScaler> {
        cfg.validate()?;
        Ok(GradScaler {
            cfg,
            scale: cfg.init_scale as f32,
            ..GradScaler::default()
        })
    }

    /// The current scale.
    pub fn scale_value(&self) -> f64 {
        self.scale as f64
    }

    /// `loss · scale`, in f32.
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        loss.to_dtype(DType::F32)?.mul_scalar(self.scale as f64)
    }

    /// Divides the gradients of `params` by the scale (in place in `grads`, as f32) and notes
    /// whether any is not finite. Once per step, before clipping.
    pub fn unscale(&mut self, grads: &mut Gradients, params: &[Param]) -> Result<()> {
        if self.unscaled.is_some() {
            return Err(Error::data(
                "GradScaler::unscale",
                "called twice since the last update()".to_string(),
            ));
        }
        let _guard = no_grad();
        // torch: the reciprocal in f64, then rounded to f32.
        let inv = (1.0 / self.scale as f64) as f32 as f64;
        let mut found_inf = false;
        for p in params {
            let t = p.tensor();
            if let Some(g) = grads.remove(&t) {
                let g = g.to_dtype(DType::F32)?.mul_scalar(inv)?;
                // 0·x is 0 for every finite x and NaN otherwise: one reduction finds both.
                let probe = g.mul_scalar(0.0)?.sum(&[], false)?.to_scalar::<f32>()?;
                found_inf |= !probe.is_finite();
                grads.insert(&t, g);
            }
        }
        self.unscaled = Some(found_inf);
        Ok(())
    }

    /// Steps `opt` unless a gradient was not finite; returns whether the update ran. An
    /// error if [`unscale`](GradScaler::unscale) did not run first this step.
    pub fn step(&mut self, opt: &mut dyn Optimizer, grads: &Gradients) -> Result<bool> {
        let found_inf = match self.unscaled {
            Some(f) => f,
            None => {
                return Err(Error::data(
                    "GradScaler::step",
                    "unscale(grads, params) must run first (the optimizer would see scaled \
                     gradients)"
                        .to_string(),
                ));
            }
        };
        if found_inf {
            return Ok(false);
        }
        opt.step(grads)?;
        Ok(true)
    }

    /// Adjusts the scale after a step: backs off after a non-finite gradient, grows after
    /// `growth_interval` clean steps in a row.
    pub fn update(&mut self) {
        let found_inf = self.unscaled.take().unwrap_or(false);
        if found_inf {
            self.scale *= self.cfg.backoff_factor as f32;
            self.growth_tracker = 0;
            return;
        }
        self.growth_tracker += 1;
        if self.growth_tracker == self.cfg.growth_interval {
            let grown = self.scale * self.cfg.growth_factor as f32;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        }
    }

    /// The state to save with a checkpoint (scale and growth tracker; the scale's bits, so a
    /// resume is exact).
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "scale": self.scale as f64,
            "scale_bits": self.scale.to_bits(),
            "growth_tracker": self.growth_tracker,
        })
    }

    /// Restores a state written by [`GradScaler::state`].
    pub fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        let bad = || Error::data("GradScaler::load_state", format!("invalid state {v}"));
        let bits = v["scale_bits"].as_u64().ok_or_else(bad)?;
        let scale = f32::from_bits(u32::try_from(bits).map_err(|_| bad())?);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad());
        }
        self.scale = scale;
        self.growth_tracker = v["growth_tracker"].as_u64().ok_or_else(bad)?;
        self.unscaled = None;
        Ok(())
    }
}
