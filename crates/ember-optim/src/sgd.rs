//! SGD with momentum, dampening, Nesterov and weight decay, as `torch.optim.SGD`.

use std::collections::BTreeMap;
use std::path::Path;

use ember_core::Gradients;
use ember_core::{DType, Error, Result, Tensor, no_grad};
use ember_nn::Param;

use crate::state::{load_state, save_state};
use crate::{Optimizer, ParamGroup};

/// Hyper-parameters of [`Sgd`] (torch's defaults but `lr`, which torch requires).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// learning rate
    pub lr: f64,
    /// momentum factor
    pub momentum: f64,
    /// dampening of the momentum
    pub dampening: f64,
    /// Nesterov momentum
    pub nesterov: bool,
    /// L2 weight decay (added to the gradient)
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-2,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// Checks the hyper-parameters as torch does: lr, momentum, dampening and weight decay
    /// finite and non-negative; Nesterov needs momentum and no dampening.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::data(
                    "Sgd",
                    format!("{what} {v} must be finite and non-negative"),
                ));
            }
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(Error::data(
                "Sgd",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }
}

/// Stochastic gradient descent. Momentum buffers are kept in F32.
pub struct Sgd {
    groups: Vec<ParamGroup>,
    cfg: SgdConfig,
    buffers: BTreeMap<String, Tensor>,
    steps: u64,
}

impl Sgd {
    /// One group with the config's weight decay.
    pub fn new(params: Vec<Param>, cfg: SgdConfig) -> Sgd {
        let group = ParamGroup {
            params,
            lr_scale: 1.0,
            weight_decay: cfg.weight_decay,
        };
        Sgd::with_groups(vec![group], cfg)
    }

    /// Several groups.
    pub fn with_groups(groups: Vec<ParamGroup>, cfg: SgdConfig) -> Sgd {
        Sgd {
            groups,
            cfg,
            buffers: BTreeMap::new(),
            steps: 0,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        self.cfg.validate()?;
        let _guard = no_grad();
        let c = self.cfg;
        for group in &self.groups {
            let lr = c.lr * group.lr_scale;
            for p in &group.params {
                let w = p.tensor();
                let Some(g) = grads.get(&w) else { continue };
                let w32 = w.detach().to_dtype(DType::F32)?;
                let mut g = g.to_dtype(DType::F32)?;
                if group.weight_decay != 0.0 {
                    g = g.add(&w32.mul_scalar(group.weight_decay)?)?;
                }
                if c.momentum != 0.0 {
                    let buf = match self.buffers.remove(p.name()) {
                        None => g.clone(),
                        Some(b) => b
                            .mul_scalar(c.momentum)?
                            .add(&g.mul_scalar(1.0 - c.dampening)?)?,
                    };
                    g = if c.nesterov {
                        g.add(&buf.mul_scalar(c.momentum)?)?
                    } else {
                        buf.clone()
                    };
                    self.buffers.insert(p.name().to_string(), buf);
                }
                p.set(&w32.sub(&g.mul_scalar(lr)?)?)?;
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
        ember_core::usage::distinct_bytes(self.buffers.values())
    }

    fn save(&self, prefix: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self
            .buffers
            .iter()
            .map(|(n, b)| (format!("{n}.momentum_buffer"), b.clone()))
            .collect();
        let json = serde_json::json!({
            "optimizer": "SGD",
            "steps": self.steps,
            "lr": self.cfg.lr,
            "momentum": self.cfg.momentum,
            "dampening": self.cfg.dampening,
            "nesterov": self.cfg.nesterov,
            "weight_decay": self.cfg.weight_decay,
        });
        save_state(prefix, &tensors, &json)
    }

    fn load(&mut self, prefix: &Path) -> Result<()> {
        let (ckpt, json) = load_state(prefix)?;
        self.steps = json["steps"].as_u64().unwrap_or(0);
        if let Some(lr) = json["lr"].as_f64() {
            self.cfg.lr = lr;
        }
        self.buffers.clear();
        for group in &self.groups {
            for p in &group.params {
                let key = format!("{}.momentum_buffer", p.name());
                if ckpt.contains(&key) {
                    let b = ckpt.load(&key, p.tensor().device(), Some(DType::F32))?;
                    self.buffers.insert(p.name().to_string(), b);
                }
            }
        }
        Ok(())
    }
}
