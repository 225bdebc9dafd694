//! `GradScaler` against `torch.amp.GradScaler` on a synthetic run with injected overflows
//! (`scripts/make_amp_fixtures.py`): the scale before and after each step, the skipped steps
//! and the weights all follow torch's trajectory; the state survives a save and load.

use std::path::PathBuf;

use ember_core::{Backward, DType, Device, Gradients, Tensor};
use ember_nn::{Init, VarBuilder, VarStore};
use ember_optim::{GradScaler, GradScalerConfig, Sgd, SgdConfig, clip_grad_norm};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/amp.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["grad_scaler"].as_array().unwrap().clone()
}

fn config(kw: &Value) -> GradScalerConfig {
    let d = GradScalerConfig::default();
    let f = |k: &str, v: f64| kw[k].as_f64().unwrap_or(v);
    GradScalerConfig {
        init_scale: f("init_scale", d.init_scale),
        growth_factor: f("growth_factor", d.growth_factor),
        backoff_factor: f("backoff_factor", d.backoff_factor),
        growth_interval: kw["growth_interval"].as_u64().unwrap_or(d.growth_interval),
    }
}

#[test]
fn trajectories_match_torch() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let store = VarStore::new(Device::Cpu, DType::F32);
        let w = VarBuilder::new(&store).get("w", &[2], Init::Zeros).unwrap();
        w.set(&Tensor::from_vec(vec![1.0f32, -2.0], &[2], Device::Cpu).unwrap())
            .unwrap();
        let mut opt = Sgd::new(
            vec![w.clone()],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        let mut scaler = GradScaler::new(config(&case["kwargs"])).unwrap();
        for rec in case["trajectory"].as_array().unwrap() {
            let t = rec["step"].as_u64().unwrap();
            let c = Tensor::from_vec(vec![0.5 + t as f32, -1.0], &[2], Device::Cpu).unwrap();
            let loss = w.tensor().mul(&c).unwrap().sum(&[], false).unwrap();
            let mut grads: Gradients = scaler.scale(&loss).unwrap().backward().unwrap();
            if let Some(bad) = case["inject"][t.to_string()].as_str() {
                let g = grads.remove(&w.tensor()).unwrap().to_vec::<f32>().unwrap();
                let v: f32 = bad.parse().unwrap();
                let g = Tensor::from_vec(vec![v, g[1]], &[2], Device::Cpu).unwrap();
                grads.insert(&w.tensor(), g);
            }
            scaler
                .unscale(&mut grads, std::slice::from_ref(&w))
                .unwrap();
            clip_grad_norm(&mut grads, std::slice::from_ref(&w), 1.0).unwrap();
            let before = scaler.scale_value();
            let stepped = scaler.step(&mut opt, &grads).unwrap();
            scaler.update();
            let at = format!("{name} step {t}");
            assert_eq!(before, rec["scale_before"].as_f64().unwrap(), "{at}: scale");
            assert_eq!(
                scaler.scale_value(),
                rec["scale_after"].as_f64().unwrap(),
                "{at}: scale after update"
            );
            assert_eq!(!stepped, rec["skipped"].as_bool().unwrap(), "{at}: skipped");
            let ours = w.tensor().to_vec::<f32>().unwrap();
            for (o, want) in ours.iter().zip(rec["w"].as_array().unwrap()) {
                let want = want.as_f64().unwrap() as f32;
                assert!((o - want).abs() <= 1e-6, "{at}: w {ours:?}, torch {want}");
            }
        }
    }
}

#[test]
fn state_round_trips_and_misuse_is_an_error() {
    let mut a = GradScaler::new(GradScalerConfig {
        growth_interval: 3,
        ..Default::default()
    })
    .unwrap();
    let store = VarStore::new(Device::Cpu, DType::F32);
    let w = VarBuilder::new(&store).get("w", &[2], Init::Ones).unwrap();
    let mut opt = Sgd::new(vec![w.clone()], SgdConfig::default());
    let mut grads = Gradients::default();
    assert!(a.step(&mut opt, &grads).is_err(), "step before unscale");
    a.unscale(&mut grads, std::slice::from_ref(&w)).unwrap();
    assert!(
        a.unscale(&mut grads, std::slice::from_ref(&w)).is_err(),
        "unscale twice"
    );
    a.update();
    let mut b = GradScaler::new(GradScalerConfig {
        growth_interval: 3,
        ..Default::default()
    })
    .unwrap();
    b.load_state(&a.state()).unwrap();
    assert_eq!(b.state(), a.state());
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"scale_bits": 0x7f80_0000u32, "growth_tracker": 0}),
        serde_json::json!({"scale_bits": u64::MAX, "growth_tracker": 0}),
    ] {
        assert!(b.load_state(&bad).is_err(), "{bad}");
    }
    for cfg in [
        GradScalerConfig {
            init_scale: 0.0,
            ..Default::default()
        },
        GradScalerConfig {
            growth_factor: 1.0,
            ..Default::default()
        },
        GradScalerConfig {
            backoff_factor: 1.5,
            ..Default::default()
        },
        GradScalerConfig {
            growth_interval: 0,
            ..Default::default()
        },
    ] {
        assert!(GradScaler::new(cfg).is_err(), "{cfg:?}");
    }
}
