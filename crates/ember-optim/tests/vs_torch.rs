//! SGD, Adam and AdamW trajectories, clipping and LR schedules against torch.optim
//! (`scripts/make_optim_fixtures.py`).

use std::path::PathBuf;

use ember_core::Gradients;
use ember_core::{DType, Device, Tensor};
use ember_nn::{Init, Param, VarBuilder, VarStore};
use ember_optim::{
    AdamW, AdamWConfig, Optimizer, Schedule, Sgd, SgdConfig, clip_grad_norm, cosine_with_warmup,
};
use ember_weights::Checkpoint;

fn fixtures() -> (Checkpoint, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let ckpt = Checkpoint::open(dir.join("optim.safetensors")).unwrap();
    let json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("optim.json")).unwrap()).unwrap();
    (ckpt, json)
}

fn params(store: &VarStore, ckpt: &Checkpoint) -> Vec<Param> {
    let vb = VarBuilder::new(store);
    ["w", "b"]
        .iter()
        .map(|k| {
            let init = ckpt.load(&format!("init.{k}"), Device::Cpu, None).unwrap();
            let p = vb.get(k, init.dims(), Init::Zeros).unwrap();
            p.set(&init).unwrap();
            p
        })
        .collect()
}

fn grads_at(ckpt: &Checkpoint, ps: &[Param], step: usize, scale: f64) -> Gradients {
    let mut g = Gradients::default();
    for (p, k) in ps.iter().zip(["w", "b"]) {
        let t = ckpt
            .load(&format!("grad.{step}.{k}"), Device::Cpu, None)
            .unwrap();
        g.insert(&p.tensor(), t.mul_scalar(scale).unwrap());
    }
    g
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn optimizer(cfg: &serde_json::Value, ps: Vec<Param>) -> Box<dyn Optimizer> {
    let f = |k: &str, d: f64| cfg[k].as_f64().unwrap_or(d);
    match cfg["class"].as_str().unwrap() {
        "SGD" => Box::new(Sgd::new(
            ps,
            SgdConfig {
                lr: f("lr", 0.0),
                momentum: f("momentum", 0.0),
                dampening: f("dampening", 0.0),
                nesterov: cfg["nesterov"].as_bool().unwrap_or(false),
                weight_decay: f("weight_decay", 0.0),
            },
        )),
        class => {
            let betas = cfg["betas"].as_array().map_or((0.9, 0.999), |b| {
                (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())
            });
            let adamw = class == "AdamW";
            Box::new(AdamW::new(
                ps,
                AdamWConfig {
                    lr: f("lr", 1e-3),
                    betas,
                    eps: f("eps", 1e-8),
                    weight_decay: f("weight_decay", if adamw { 0.01 } else { 0.0 }),
                    decoupled: adamw,
                },
            ))
        }
    }
}

#[test]
fn trajectories_match_torch_optim() {
    let (ckpt, json) = fixtures();
    let steps = json["steps"].as_u64().unwrap() as usize;
    let mut report = Vec::new();
    for (name, cfg) in json["configs"].as_object().unwrap() {
        let store = VarStore::new(Device::Cpu, DType::F32);
        let ps = params(&store, &ckpt);
        let mut opt = optimizer(cfg, ps.clone());
        let mut worst = 0.0f64;
        for s in 0..steps {
            opt.step(&grads_at(&ckpt, &ps, s, 1.0)).unwrap();
            for (p, k) in ps.iter().zip(["w", "b"]) {
                let want = ckpt
                    .load(&format!("{name}.{s}.{k}"), Device::Cpu, None)
                    .unwrap();
                let d = max_diff(&p.tensor(), &want);
                assert!(d <= 1e-5, "{name} step {s} param {k}: max |diff| {d:e}");
                worst = worst.max(d);
            }
        }
        report.push(format!("{name}: {worst:.1e}"));
    }
    eprintln!(
        "optimizer max |ember - torch| over {steps} steps: {}",
        report.join(", ")
    );
}

#[test]
fn clip_grad_norm_matches_torch() {
    let (ckpt, _) = fixtures();
    let store = VarStore::new(Device::Cpu, DType::F32);
    let ps = params(&store, &ckpt);
    let mut g = grads_at(&ckpt, &ps, 0, 3.0);
    let norm = clip_grad_norm(&mut g, &ps, 1.5).unwrap();
    let want = ckpt
        .load("clip.norm", Device::Cpu, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()[0];
    assert!((norm - want as f64).abs() < 1e-4, "{norm} vs {want}");
    for (p, k) in ps.iter().zip(["w", "b"]) {
        let theirs = ckpt.load(&format!("clip.{k}"), Device::Cpu, None).unwrap();
        assert!(max_diff(g.get(&p.tensor()).unwrap(), &theirs) < 1e-6, "{k}");
    }
}

#[test]
fn schedules_match_torch_lr_scheduler() {
    let (_, json) = fixtures();
    let ours = [
        (
            "step",
            Schedule::Step {
                lr: 0.1,
                step_size: 4,
                gamma: 0.5,
            },
        ),
        (
            "linear",
            Schedule::Linear {
                lr: 0.1,
                start: 0.2,
                end: 1.0,
                steps: 8,
            },
        ),
        (
            "cosine",
            Schedule::Cosine {
                lr: 0.1,
                min_lr: 0.001,
                steps: 20,
            },
        ),
        (
            "warmup_cosine",
            Schedule::Sequential {
                first: Box::new(Schedule::Linear {
                    lr: 0.1,
                    start: 0.25,
                    end: 1.0,
                    steps: 4,
                }),
                switch: 4,
                then: Box::new(Schedule::Cosine {
                    lr: 0.1,
                    min_lr: 0.01,
                    steps: 16,
                }),
            },
        ),
    ];
    for (name, sched) in ours {
        for (step, want) in json["schedules"][name]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = want.as_f64().unwrap();
            let got = sched.lr(step as u64);
            assert!(
                (got - want).abs() < 1e-12,
                "{name} step {step}: {got} vs torch {want}"
            );
        }
    }
    let s = cosine_with_warmup(1.0, 10, 100, 0.1);
    assert!((s.lr(0) - 0.1).abs() < 1e-12 && (s.lr(10) - 1.0).abs() < 1e-12);
    assert!((s.lr(100) - 0.1).abs() < 1e-12 && (s.lr(500) - 0.1).abs() < 1e-12);
}

#[test]
fn state_round_trips_and_resumes_identically() {
    let (ckpt, _) = fixtures();
    let cfg = serde_json::json!({"class": "AdamW", "lr": 0.01, "weight_decay": 0.1});
    // 6 steps straight.
    let a = VarStore::new(Device::Cpu, DType::F32);
    let pa = params(&a, &ckpt);
    let mut oa = optimizer(&cfg, pa.clone());
    for s in 0..6 {
        oa.step(&grads_at(&ckpt, &pa, s, 1.0)).unwrap();
    }
    // 3 steps, save, a fresh optimizer loads, 3 more.
    let dir = std::env::temp_dir().join(format!("ember-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let b = VarStore::new(Device::Cpu, DType::F32);
    let pb = params(&b, &ckpt);
    let mut ob = optimizer(&cfg, pb.clone());
    for s in 0..3 {
        ob.step(&grads_at(&ckpt, &pb, s, 1.0)).unwrap();
    }
    ob.save(&dir.join("opt")).unwrap();
    let mut oc = optimizer(&cfg, pb.clone());
    oc.load(&dir.join("opt")).unwrap();
    assert_eq!(oc.steps(), 3);
    for s in 3..6 {
        oc.step(&grads_at(&ckpt, &pb, s, 1.0)).unwrap();
    }
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(
            x.tensor().to_vec::<f32>().unwrap(),
            y.tensor().to_vec::<f32>().unwrap()
        );
    }
}

#[test]
fn frozen_parameters_are_skipped_and_half_params_keep_f32_state() {
    let store = VarStore::new(Device::Cpu, DType::F16);
    let vb = VarBuilder::new(&store);
    let w = vb.get("w", &[3], Init::Ones).unwrap();
    let frozen = vb.get("f", &[3], Init::Ones).unwrap();
    frozen.set_trainable(false).unwrap();
    let mut opt = AdamW::new(
        store
            .named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
        AdamWConfig::default(),
    );
    let mut g = Gradients::default();
    g.insert(
        &w.tensor(),
        Tensor::full(&[3], 0.5, DType::F16, Device::Cpu).unwrap(),
    );
    opt.step(&g).unwrap();
    assert_eq!(w.tensor().dtype(), DType::F16);
    assert!(w.tensor().to_vec::<f32>().unwrap()[0] < 1.0);
    assert_eq!(frozen.tensor().to_vec::<f32>().unwrap(), vec![1.0; 3]);
}
