//! Every zoo model's dropout settings honoured as transformers honours them: in eval mode the
//! output equals transformers' (dropout off), in training mode its distribution does.
//!
//! Masks come from each framework's own generator, so single forwards cannot be compared;
//! `scripts/make_dropout_fixtures.py` recorded the per-element mean and standard deviation of
//! N training-mode forwards in transformers (BERT: hidden and attention dropout; GPT-2: embedding,
//! attention and residual dropout; Llama: attention dropout; Phi-3: attention and residual
//! dropout, all set by config.json overrides). Ember's N forwards must give the same variance
//! (within 10 %) and means within sampling error; the same check on the probabilities halved
//! must fail, so the test sees a misplaced or mis-scaled dropout.

use std::path::PathBuf;

use ember_core::{DType, Device, Tensor};
use ember_models::{AutoModelForCausalLM, Bert};
use ember_testing::{fixtures_dir, read_fixture};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The fixture model `name` copied with `overrides` (scaled by `scale`) in its config.json.
fn patched(name: &str, overrides: &Value, scale: f64) -> PathBuf {
    let src = fixtures_dir().join("models").join(name);
    let dir = std::env::temp_dir().join(format!(
        "ember-dropout-{name}-{scale}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    for (k, v) in overrides.as_object().unwrap() {
        cfg[k] = (v.as_f64().unwrap() * scale).into();
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

/// A model's forward on ids: BERT's last hidden state or a causal LM's logits, `(T, ·)`.
enum Model {
    Bert(Box<Bert>),
    Causal(AutoModelForCausalLM),
}

impl Model {
    fn load(name: &str, dir: &PathBuf) -> Model {
        let cpu = Device::Cpu;
        match name {
            "tiny-bert" => Model::Bert(Box::new(
                Bert::from_pretrained(dir, cpu, DType::F32).unwrap(),
            )),
            _ => {
                Model::Causal(AutoModelForCausalLM::from_pretrained(dir, cpu, DType::F32).unwrap())
            }
        }
    }

    fn train(&self, on: bool) {
        match (self, on) {
            (Model::Bert(m), true) => m.train(),
            (Model::Bert(m), false) => m.eval(),
            (Model::Causal(m), true) => m.train(),
            (Model::Causal(m), false) => m.eval(),
        }
    }

    fn forward(&self, ids: &Tensor) -> Vec<f64> {
        let out = match self {
            Model::Bert(m) => m.forward(ids, None, None).unwrap().0,
            Model::Causal(m) => m.forward(ids).unwrap(),
        };
        let v = out.reshape(&[-1]).unwrap().to_vec::<f32>().unwrap();
        v.into_iter().map(f64::from).collect()
    }
}

/// Per-element mean and standard deviation of `n` training-mode forwards.
fn moments(m: &Model, ids: &Tensor, n: usize) -> (Vec<f64>, Vec<f64>) {
    m.train(true);
    let (mut sum, mut sq) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let y = m.forward(ids);
        sum.resize(y.len(), 0.0);
        sq.resize(y.len(), 0.0);
        for (i, v) in y.iter().enumerate() {
            sum[i] += v;
            sq[i] += v * v;
        }
    }
    let n = n as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / n - m * m) * n / (n - 1.0)).max(0.0).sqrt())
        .collect();
    (mean, std)
}

/// Ember's variance over transformers' (summed over elements), and the fraction of elements
/// whose means differ by more than 4 standard errors.
fn compare(mean: &[f64], std: &[f64], want_mean: &[f64], want_std: &[f64], n: f64) -> (f64, f64) {
    let var = |s: &[f64]| s.iter().map(|x| x * x).sum::<f64>();
    let ratio = var(std) / var(want_std);
    let far = mean
        .iter()
        .zip(want_mean)
        .zip(std.iter().zip(want_std))
        .filter(|((m, w), (s, ws))| {
            let se = ((*s * *s + *ws * *ws) / n).sqrt().max(1e-9);
            (*m - *w).abs() > 4.0 * se
        })
        .count();
    (ratio, far as f64 / mean.len() as f64)
}

#[test]
fn training_mode_dropout_is_distributed_as_transformers() {
    let r: Value = serde_json::from_slice(&read_fixture("dropout_stats.json")).unwrap();
    let n = r["n"].as_u64().unwrap() as usize;
    for case in r["cases"].as_array().unwrap() {
        let name = case["model"].as_str().unwrap();
        let ids: Vec<i64> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let ids = Tensor::from_vec(ids.clone(), &[1, ids.len()], Device::Cpu).unwrap();
        let dir = patched(name, &case["overrides"], 1.0);
        let model = Model::load(name, &dir);
        // Loaded in eval mode, as transformers' from_pretrained: no dropout.
        let eval = model.forward(&ids);
        let worst = eval
            .iter()
            .zip(floats(&case["eval"]))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{name}: eval output differs by {worst}");
        assert_eq!(
            model.forward(&ids),
            eval,
            "{name}: eval mode is deterministic"
        );

        let (want_mean, want_std) = (floats(&case["mean"]), floats(&case["std"]));
        let (mean, std) = moments(&model, &ids, n);
        let (ratio, far) = compare(&mean, &std, &want_mean, &want_std, n as f64);
        eprintln!(
            "{name} {}: variance ratio {ratio:.3}, {:.2}% of means past 4 standard errors",
            case["overrides"],
            100.0 * far
        );
        assert!(
            (0.9..1.1).contains(&ratio),
            "{name}: variance ratio {ratio}"
        );
        assert!(far < 0.01, "{name}: {far} of the means differ");
        model.train(false);
        assert_eq!(
            model.forward(&ids),
            eval,
            "{name}: eval() turns dropout off"
        );

        // The probabilities halved: the same comparison must see it.
        let half = Model::load(name, &patched(name, &case["overrides"], 0.5));
        let (mean, std) = moments(&half, &ids, n / 4);
        let (ratio, _) = compare(&mean, &std, &want_mean, &want_std, n as f64 / 4.0);
        eprintln!("{name} with halved dropout: variance ratio {ratio:.3}");
        assert!(
            !(0.9..1.1).contains(&ratio),
            "{name}: halving the dropout went unseen ({ratio})"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
