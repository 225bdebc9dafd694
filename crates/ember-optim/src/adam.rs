//! Adam and AdamW (decoupled weight decay), as `torch.optim.Adam` / `AdamW`.

use std::collections::BTreeMap;
use std::path::Path;

use ember_core::fused::{AdamStep, adamw_step};
use ember_core::{DType, Error, Gradients, Result, Tensor, no_grad};
use ember_nn::Param;

use crate::state::{load_state, save_state};
use crate::{Optimizer, ParamGroup};

/// Hyper-parameters of [`AdamW`]; torch's defaults by `Default` (AdamW, lr 1e-3,
/// betas (0.9, 0.999), eps 1e-8, weight decay 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// learning rate
    pub lr: f64,
    /// (β1, β2)
    pub betas: (f64, f64),
    /// added to the denominator, after the bias-corrected square root (as torch)
    pub eps: f64,
    /// weight decay
    pub weight_decay: f64,
    /// `true`: AdamW (decay applied to the weights); `false`: Adam (L2 added to the gradient)
    pub decoupled: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        }
    }
}

impl AdamWConfig {
    /// Checks the hyper-parameters as torch does: lr, eps and weight decay finite and
    /// non-negative, betas in [0, 1).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::data("AdamW", msg));
        for (what, v) in [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{what} {v} must be finite and non-negative"));
            }
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return bad(format!("betas ({b1}, {b2}) must each be in [0, 1)"));
        }
        Ok(())
    }

    /// torch.optim.AdamW's defaults with this learning rate.
    pub fn with_lr(lr: f64) -> AdamWConfig {
        AdamWConfig {
            lr,
            ..Default::default()
        }
    }

    /// torch.optim.Adam's defaults (no weight decay, coupled).
    pub fn adam() -> AdamWConfig {
        AdamWConfig {
            weight_decay: 0.0,
            decoupled: false,
            ..Default::default()
        }
    }
}

/// Adam / AdamW. Moments are kept in F32 whatever the parameter dtype.
pub struct AdamW {
    groups: Vec<ParamGroup>,
    cfg: AdamWConfig,
    /// Per parameter name: (steps, exp_avg, exp_avg_sq).
    state: BTreeMap<String, (u64, Tensor, Tensor)>,
    steps: u64,
}

impl AdamW {
    /// One group with the config's weight decay.
    pub fn new(params: Vec<Param>, cfg: AdamWConfig) -> AdamW {
        let group = ParamGroup {
            params,
            lr_scale: 1.0,
            weight_decay: cfg.weight_decay,
        };
        AdamW::with_groups(vec![group], cfg)
    }

    /// Several groups (see [`crate::decay_groups`]).
    pub fn with_groups(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> AdamW {
        AdamW {
            groups,
            cfg,
            state: BTreeMap::new(),
            steps: 0,
        }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        self.cfg.validate()?;
        let _guard = no_grad();
        let (b1, b2) = self.cfg.betas;
        for group in &self.groups {
            let lr = self.cfg.lr * group.lr_scale;
            let wd = group.weight_decay;
            for p in &group.params {
                let w = p.tensor();
                let Some(g) = grads.get(&w) else { continue };
                let g = g.to_dtype(DType::F32)?;
                let w32 = w.detach().to_dtype(DType::F32)?;
                let (t, m, v) = match self.state.remove(p.name()) {
                    Some(s) => s,
                    None => (0, g.zeros_like()?, g.zeros_like()?),
                };
                let t = t + 1;
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                let step = AdamStep {
                    lr,
                    betas: (b1, b2),
                    eps: self.cfg.eps,
                    weight_decay: wd,
                    decoupled: self.cfg.decoupled,
                    bias_correction1: bc1,
                    bias_correction2: bc2,
                };
                let (w32, m, v) = adamw_step(&w32, &g, m, v, &step)?;
                p.set(&w32)?;
                self.state.insert(p.name().to_string(), (t, m, v));
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.cfg.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state_bytes(&self) -> u64 {
        let tensors = self.state.values().flat_map(|(_, m, v)| [m, v]);
        ember_core::usage::distinct_bytes(tensors)
    }

    fn save(&self, prefix: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        let mut counts = serde_json::Map::new();
        for (name, (t, m, v)) in &self.state {
            tensors.push((format!("{name}.exp_avg"), m.clone()));
            tensors.push((format!("{name}.exp_avg_sq"), v.clone()));
            counts.insert(name.clone(), (*t).into());
        }
        let json = serde_json::json!({
            "optimizer": if self.cfg.decoupled { "AdamW" } else { "Adam" },
            "steps": self.steps,
            "lr": self.cfg.lr,
            "betas": [self.cfg.betas.0, self.cfg.betas.1],
            "eps": self.cfg.eps,
            "weight_decay": self.cfg.weight_decay,
            "param_steps": counts,
        });
        save_state(prefix, &tensors, &json)
    }

    fn load(&mut self, prefix: &Path) -> Result<()> {
        let (ckpt, json) = load_state(prefix)?;
        self.steps = json["steps"].as_u64().unwrap_or(0);
        if let Some(lr) = json["lr"].as_f64() {
            self.cfg.lr = lr;
        }
        self.state.clear();
        let counts = json["param_steps"].as_object().cloned().unwrap_or_default();
        for group in &self.groups {
            for p in &group.params {
                let Some(t) = counts.get(p.name()).and_then(|v| v.as_u64()) else {
                    continue;
                };
                let dev = p.tensor().device();
                let m = ckpt.load(&format!("{}.exp_avg", p.name()), dev, Some(DType::F32))?;
                let v = ckpt.load(&format!("{}.exp_avg_sq", p.name()), dev, Some(DType::F32))?;
                self.state.insert(p.name().to_string(), (t, m, v));
            }
        }
        Ok(())
    }
}
