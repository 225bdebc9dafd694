//! LoRA: low-rank adapters beside frozen weights, read and written in peft's format.
//!
//! [`Lora::apply`] attaches an adapter (`lora_A` `(r, in)`, `lora_B` `(out, r)`) to every
//! [`Linear`](crate::Linear) or [`Conv1D`](crate::Conv1D) weight whose module name matches
//! `target_modules` (peft's rules: a list of names matched as the whole name or its last
//! dotted parts, or a regex matching the whole name), freezes the base and keeps the adapters
//! in their own [`VarStore`] (train it with any optimizer or the trainer). The layers add
//! `B(A(dropout(x))) · scale` to their output, in the adapters' dtype, so a bf16 or quantized
//! base trains its adapters in f32 (QLoRA). [`Lora::save`] writes `adapter_config.json` and
//! `adapter_model.safetensors` as peft does; [`Lora::load`] reads them.
//!
//! ```
//! use ember_core::{DType, Device, Tensor};
//! use ember_nn::lora::{Lora, LoraConfig};
//! use ember_nn::{Linear, Module, VarBuilder, VarStore};
//!
//! let store = VarStore::new(Device::Cpu, DType::F32);
//! let proj = Linear::new(VarBuilder::new(&store).pp("attn").pp("q_proj"), 8, 8, false)?;
//! let lora = Lora::apply(&store, LoraConfig::new(2, 4.0, &["q_proj"]), 0)?;
//! assert_eq!(lora.store.names(), ["attn.q_proj.lora_A.weight", "attn.q_proj.lora_B.weight"]);
//! assert!(store.trainable_parameters().is_empty()); // the base is frozen
//! let x = Tensor::ones(&[1, 8], DType::F32, Device::Cpu)?;
//! let _y = proj.forward(&x)?; // a fresh adapter (B = 0) changes nothing
//! # Ok::<(), ember_core::Error>(())
//! ```

use std::path::Path;

use ember_core::{DType, Error, Result, Tensor};
use ember_weights::Checkpoint;
use serde_json::{Value, json};

use crate::param::{Adapter, Init, Param, WeightRole};
use crate::{Dropout, Module, VarBuilder, VarStore};

const OP: &str = "Lora";
/// Largest rank accepted from a config (peft's largest published adapters use 256).
const MAX_RANK: usize = 1 << 16;
/// Largest `adapter_config.json` read.
const MAX_CONFIG: u64 = 1 << 20;

/// Which modules get adapters, as peft's `target_modules`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetModules {
    /// Names: a module matches when its name is one of them or ends in `.` + one of them
    /// (`q_proj` matches `model.layers.0.self_attn.q_proj`).
    Names(Vec<String>),
    /// A regex that must match the whole module name.
    Regex(String),
}

/// LoRA's hyperparameters, peft's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// rank `r` (peft default 8)
    pub r: usize,
    /// `lora_alpha` (peft default 8)
    pub lora_alpha: f64,
    /// dropout on the adapters' input
    pub lora_dropout: f64,
    /// which modules get adapters
    pub target_modules: TargetModules,
    /// scale by `lora_alpha / √r` instead of `lora_alpha / r`
    pub use_rslora: bool,
}

impl LoraConfig {
    /// Rank `r`, `lora_alpha`, adapters on the modules named `targets` (no dropout).
    pub fn new(r: usize, lora_alpha: f64, targets: &[&str]) -> LoraConfig {
        LoraConfig {
            r,
            lora_alpha,
            lora_dropout: 0.0,
            target_modules: TargetModules::Names(targets.iter().map(|t| t.to_string()).collect()),
            use_rslora: false,
        }
    }

    /// The factor on the adapters' output: `lora_alpha / r` (`/ √r` with rsLoRA).
    pub fn scale(&self) -> f64 {
        let r = self.r as f64;
        if self.use_rslora {
            self.lora_alpha / r.sqrt()
        } else {
            self.lora_alpha / r
        }
    }

    /// Rank in `1..=65536`, alpha finite and positive, dropout in `[0, 1)`, a valid regex.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::data(OP, m));
        if self.r == 0 || self.r > MAX_RANK {
            return bad(format!("r = {} must be in 1..={MAX_RANK}", self.r));
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return bad(format!(
                "lora_alpha {} must be finite and positive",
                self.lora_alpha
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(format!(
                "lora_dropout {} must be in [0, 1)",
                self.lora_dropout
            ));
        }
        self.matcher().map(drop)
    }

    fn matcher(&self) -> Result<Matcher<'_>> {
        match &self.target_modules {
            TargetModules::Names(names) => Ok(Box::new(move |m: &str| {
                names
                    .iter()
                    .any(|t| m == t || m.strip_suffix(t.as_str()).is_some_and(|p| p.ends_with('.')))
            })),
            TargetModules::Regex(re) => {
                let re = regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| Error::data(OP, format!("target_modules regex: {e}")))?;
                Ok(Box::new(move |m: &str| re.is_match(m)))
            }
        }
    }
}

/// Whether a module name is a target.
type Matcher<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// One adapted layer.
#[derive(Debug, Clone)]
struct Target {
    /// the module's name in the model (`model.layers.0.self_attn.q_proj`)
    module: String,
    /// the frozen base weight the adapter sits beside
    weight: Param,
}

/// How the adapter files name modules and describe the base model.
#[derive(Debug, Clone, Default)]
pub struct AdapterFiles {
    /// Put before Ember's module names to get transformers' module paths: `"transformer."` for
    /// GPT-2 (`GPT2LMHeadModel`), empty for the decoder family.
    pub module_prefix: String,
    /// `base_model_name_or_path` written into `adapter_config.json`.
    pub base_model_name_or_path: Option<String>,
}

/// Adapters attached to a model's layers.
pub struct Lora {
    /// The adapters' parameters (`<module>.lora_A.weight`, `<module>.lora_B.weight`), f32,
    /// in train/eval mode with the model.
    pub store: VarStore,
    /// The hyperparameters.
    pub cfg: LoraConfig,
    targets: Vec<Target>,
}

/// `(in, out)` of a Linear (`(out, in)`) or Conv1D (`(in, out)`) weight.
fn in_out(weight: &Param) -> Option<(usize, usize, bool)> {
    let d = weight.dims();
    match (weight.role()?, d.as_slice()) {
        (WeightRole::Linear, [out, inp]) => Some((*inp, *out, false)),
        (WeightRole::Conv1D, [inp, out]) => Some((*inp, *out, true)),
        _ => None,
    }
}

impl Lora {
    /// Fresh adapters (`lora_A` Kaiming-uniform as `nn.Linear`, `lora_B` zeros; init seed
    /// `seed`) on every Linear/Conv1D weight of `base` that `cfg.target_modules` matches; the
    /// base's parameters are frozen. No match, or a weight that already has an adapter, is
    /// an error.
    pub fn apply(base: &VarStore, cfg: LoraConfig, seed: u64) -> Result<Lora> {
        cfg.validate()?;
        let targets = Lora::targets(base, &cfg)?;
        let store = base.beside(DType::F32, seed);
        let mut made = Vec::new();
        {
            let vb = VarBuilder::new(&store);
            for t in targets {
                let (inp, out, _) = in_out(&t.weight).unwrap_or((0, 0, false));
                let m = vb.pp(&t.module);
                let a = m
                    .pp("lora_A")
                    .get("weight", &[cfg.r, inp], Init::KaimingUniform)?;
                let b = m.pp("lora_B").get("weight", &[out, cfg.r], Init::Zeros)?;
                made.push((t, a, b));
            }
        }
        Lora::attach_all(base, store, cfg, made)
    }

    /// The base's adaptable weights that `cfg` targets.
    fn targets(base: &VarStore, cfg: &LoraConfig) -> Result<Vec<Target>> {
        let matches = cfg.matcher()?;
        let mut out = Vec::new();
        for (name, p) in base.named_parameters() {
            let Some(module) = name.strip_suffix(".weight") else {
                continue;
            };
            if in_out(&p).is_none() || !matches(module) {
                continue;
            }
            if p.adapter().is_some() {
                return Err(Error::data(OP, format!("{module} already has an adapter")));
            }
            out.push(Target {
                module: module.to_string(),
                weight: p,
            });
        }
        if out.is_empty() {
            return Err(Error::data(
                OP,
                format!(
                    "target_modules {:?} match no Linear or Conv1D layer",
                    cfg.target_modules
                ),
            ));
        }
        Ok(out)
    }

    /// Freezes `base` and attaches each `(target, lora_A, lora_B)` (held in `store`).
    fn attach_all(
        base: &VarStore,
        store: VarStore,
        cfg: LoraConfig,
        made: Vec<(Target, Param, Param)>,
    ) -> Result<Lora> {
        base.freeze("*")?;
        let mut lora = Lora {
            store,
            cfg,
            targets: Vec::new(),
        };
        for (t, a, b) in made {
            let dropout = match lora.cfg.lora_dropout {
                p if p > 0.0 => Some(Dropout::new(VarBuilder::new(&lora.store), p)?),
                _ => None,
            };
            t.weight.set_adapter(Some(Adapter {
                a,
                b,
                scale: lora.cfg.scale(),
                dropout,
                merged: false,
            }));
            lora.targets.push(t);
        }
        Ok(lora)
    }

    /// The adapted modules' names, in order.
    pub fn modules(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.module.clone()).collect()
    }

    /// `B A · scale` (the weight's own layout) of one target.
    fn delta(t: &Target, ad: &Adapter) -> Result<Tensor> {
        let ba = ad.b.tensor().detach().matmul(&ad.a.tensor().detach())?; // (out, in)
        let ba = match in_out(&t.weight) {
            Some((_, _, true)) => ba.transpose(0, 1)?, // Conv1D: (in, out)
            _ => ba,
        };
        ba.mul_scalar(ad.scale)
    }

    /// Adds each adapter into its base weight (computed in f32, stored in the weight's
    /// dtype; a quantized base becomes dense) and stops adding it in the forward, as peft's
    /// `merge_adapter`. Merging twice is an error.
    pub fn merge(&self) -> Result<()> {
        self.fold(true)
    }

    /// Subtracts merged adapters from their base weights again (`unmerge_adapter`).
    pub fn unmerge(&self) -> Result<()> {
        self.fold(false)
    }

    fn fold(&self, merge: bool) -> Result<()> {
        for t in &self.targets {
            let Some(mut ad) = t.weight.adapter() else {
                continue;
            };
            if ad.merged == merge {
                let state = if merge { "merged" } else { "not merged" };
                return Err(Error::data(OP, format!("{} is already {state}", t.module)));
            }
            let w = t.weight.tensor().detach();
            let d = Lora::delta(t, &ad)?;
            let w32 = w.to_dtype(DType::F32)?;
            let new = if merge { w32.add(&d)? } else { w32.sub(&d)? };
            let trainable = t.weight.is_trainable();
            t.weight.set(&new.to_dtype(w.dtype())?)?;
            t.weight.set_trainable(trainable)?;
            ad.merged = merge;
            t.weight.set_adapter(Some(ad));
        }
        Ok(())
    }

    /// Merges and removes the adapters (peft's `merge_and_unload`): the model is a plain
    /// model again, saved with `save_pretrained` in Hugging Face's layout.
    pub fn merge_and_unload(self) -> Result<()> {
        self.merge()?;
        self.unload();
        Ok(())
    }

    /// Removes the adapters without merging them (the base model as it was).
    pub fn unload(self) {
        for t in &self.targets {
            t.weight.set_adapter(None);
        }
    }

    /// Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` in peft's format
    /// (tensors `base_model.model.<prefix><module>.lora_A.weight`), each atomically.
    pub fn save(&self, dir: &Path, files: &AdapterFiles) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tensors = Vec::new();
        let mut fan_in_fan_out = false;
        for t in &self.targets {
            let Some(ad) = t.weight.adapter() else {
                continue;
            };
            fan_in_fan_out |= matches!(in_out(&t.weight), Some((_, _, true)));
            let key = format!("base_model.model.{}{}", files.module_prefix, t.module);
            tensors.push((format!("{key}.lora_A.weight"), ad.a.tensor().detach()));
            tensors.push((format!("{key}.lora_B.weight"), ad.b.tensor().detach()));
        }
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        ember_weights::save_safetensors(&dir.join("adapter_model.safetensors"), &refs, None, None)?;
        let targets = match &self.cfg.target_modules {
            TargetModules::Names(n) => json!(n),
            TargetModules::Regex(r) => json!(r),
        };
        let config = json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": files.base_model_name_or_path,
            "r": self.cfg.r,
            "lora_alpha": self.cfg.lora_alpha,
            "lora_dropout": self.cfg.lora_dropout,
            "target_modules": targets,
            "fan_in_fan_out": fan_in_fan_out,
            "bias": "none",
            "use_rslora": self.cfg.use_rslora,
            "use_dora": false,
            "modules_to_save": null,
            "init_lora_weights": true,
            "inference_mode": true,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        });
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| Error::data(OP, e.to_string()))?;
        ember_weights::write_atomic(&dir.join("adapter_config.json"), text.as_bytes())
    }

    /// Reads peft's adapter files from `dir` and attaches them to `base` (frozen), checking
    /// the config (LoRA only; no DoRA, bias training, per-layer ranks or saved modules) and
    /// every tensor's name and shape against the base before anything is attached.
    pub fn load(dir: &Path, base: &VarStore, files: &AdapterFiles) -> Result<Lora> {
        let cfg = read_config(dir)?;
        let ckpt = Checkpoint::open(dir.join("adapter_model.safetensors"))?;
        let prefix = format!("base_model.model.{}", files.module_prefix);
        let bad = |m: String| Error::Format {
            format: "adapter_model.safetensors",
            path: dir.join("adapter_model.safetensors").display().to_string(),
            msg: m,
        };
        let mut pairs = Vec::new();
        let mut names: Vec<&str> = ckpt.names();
        names.sort_unstable();
        for name in &names {
            let Some(module) = name
                .strip_prefix(prefix.as_str())
                .and_then(|n| n.strip_suffix(".lora_A.weight"))
            else {
                if name.ends_with(".lora_B.weight") && name.starts_with(prefix.as_str()) {
                    continue;
                }
                return Err(bad(format!(
                    "unexpected tensor {name} (not {prefix}<module>.lora_A/B.weight)"
                )));
            };
            let weight = base
                .get(&format!("{module}.weight"))
                .ok_or_else(|| bad(format!("{name}: the model has no layer {module}")))?;
            let (inp, out, _) = in_out(&weight)
                .ok_or_else(|| bad(format!("{module} is not a Linear or Conv1D layer")))?;
            let b_name = format!("{prefix}{module}.lora_B.weight");
            let (sa, sb) = (ckpt.shape(name), ckpt.shape(&b_name));
            if sa != Some(&[cfg.r, inp][..]) || sb != Some(&[out, cfg.r][..]) {
                return Err(bad(format!(
                    "{module}: lora_A {sa:?} and lora_B {sb:?}, expected [{}, {inp}] and [{out}, {}]",
                    cfg.r, cfg.r
                )));
            }
            if weight.adapter().is_some() {
                return Err(bad(format!("{module} already has an adapter")));
            }
            pairs.push((
                module.to_string(),
                weight,
                [(name.to_string(), [cfg.r, inp]), (b_name, [out, cfg.r])],
            ));
        }
        if pairs.is_empty() {
            return Err(bad("no lora_A/lora_B tensors".into()));
        }
        if names.len() != 2 * pairs.len() {
            return Err(bad(format!(
                "{} tensors for {} lora_A/lora_B pairs: a lora_B without its lora_A",
                names.len(),
                pairs.len()
            )));
        }
        let store = base.beside(DType::F32, 0);
        let mut made = Vec::new();
        {
            let vb = VarBuilder::new(&store);
            let device = base.device();
            for (module, weight, [(a_name, a_dims), (b_name, b_dims)]) in pairs {
                let m = vb.pp(&module);
                let a = m.pp("lora_A").get("weight", &a_dims, Init::Zeros)?;
                let b = m.pp("lora_B").get("weight", &b_dims, Init::Zeros)?;
                a.set(&ckpt.load(&a_name, device, Some(DType::F32))?)?;
                b.set(&ckpt.load(&b_name, device, Some(DType::F32))?)?;
                made.push((Target { module, weight }, a, b));
            }
        }
        Lora::attach_all(base, store, cfg, made)
    }
}

/// Reads and checks `dir/adapter_config.json`.
fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join("adapter_config.json");
    let bad = |m: String| Error::Format {
        format: "adapter_config.json",
        path: path.display().to_string(),
        msg: m,
    };
    let len = std::fs::metadata(&path)
        .map_err(|e| Error::io(&path, e))?
        .len();
    if len > MAX_CONFIG {
        return Err(bad(format!(
            "{len} bytes; an adapter config is a few hundred"
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v.get("peft_type").and_then(Value::as_str) != Some("LORA") {
        return Err(bad(format!("peft_type {} is not \"LORA\"", v["peft_type"])));
    }
    let truthy = |k: &str| {
        !matches!(
            v.get(k),
            None | Some(Value::Null) | Some(Value::Bool(false))
        )
    };
    let nonempty = |k: &str| match v.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    for k in [
        "use_dora",
        "lora_bias",
        "use_qalora",
        "use_bdlora",
        "layers_to_transform",
        "layers_pattern",
    ] {
        if truthy(k) {
            return Err(bad(format!("{k} is not supported")));
        }
    }
    for k in [
        "rank_pattern",
        "alpha_pattern",
        "modules_to_save",
        "exclude_modules",
        "layer_replication",
        "trainable_token_indices",
        "target_parameters",
    ] {
        if nonempty(k) {
            return Err(bad(format!("{k} is not supported")));
        }
    }
    match v.get("bias").and_then(Value::as_str) {
        None | Some("none") => {}
        Some(b) => return Err(bad(format!("bias {b:?} is not supported (\"none\" is)"))),
    }
    let r = v.get("r").and_then(Value::as_u64).unwrap_or(8);
    let target_modules = match v.get("target_modules") {
        Some(Value::String(s)) => TargetModules::Regex(s.clone()),
        Some(Value::Array(a)) => TargetModules::Names(
            a.iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("target_modules holds a non-string".into()))?,
        ),
        other => {
            return Err(bad(format!(
                "target_modules {other:?} is not a list or a regex"
            )));
        }
    };
    let cfg = LoraConfig {
        r: usize::try_from(r).map_err(|_| bad(format!("r = {r}")))?,
        lora_alpha: v.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
        lora_dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        target_modules,
        use_rslora: v
            .get("use_rslora")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    Ok(cfg)
}

/// `y + B(A(dropout(x)) · scale)` when `weight` has an unmerged adapter (computed in the
/// adapter's dtype, returned in `y`'s), else `y`.
pub(crate) fn add_adapter(x: &Tensor, y: Tensor, weight: &Param) -> Result<Tensor> {
    let Some(ad) = weight.active_adapter() else {
        return Ok(y);
    };
    let a = ad.a.tensor(); // (r, in)
    let x = x.to_dtype(a.dtype())?;
    let x = match &ad.dropout {
        Some(d) => d.forward(&x)?,
        None => x,
    };
    // The scale on the rank-r side: one tensor of the layer's output width fewer to keep.
    let delta = x
        .linear(&a, None)?
        .mul_scalar(ad.scale)?
        .linear(&ad.b.tensor(), None)?;
    y.add(&delta.to_dtype(y.dtype())?)
}
