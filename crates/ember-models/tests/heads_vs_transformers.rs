//! BERT's task heads against transformers (`scripts/make_head_fixtures.py`): checkpoints that
//! transformers saved for BertForSequenceClassification (3 labels; single- and multi-label
//! losses), BertForTokenClassification (5 labels) and BertForMaskedLM load in Ember with the
//! same logits, loss and gradient of every parameter; what Ember saves, transformers loads with
//! the same logits (with the venv of `scripts/setup_venv.sh`); a new head on an encoder-only
//! checkpoint is initialized and named.

use std::path::{Path, PathBuf};

use ember_core::{Backward, DType, Device, Tensor};
use ember_models::{
    BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, HeadOutput,
};
use ember_nn::Param;
use ember_testing::{fixtures_dir, skip_or_fail};
use ember_weights::Checkpoint;

/// A head model of either kind, as the test drives it.
enum Head {
    Seq(Box<BertForSequenceClassification>),
    Tok(Box<BertForTokenClassification>),
    Mlm(Box<BertForMaskedLM>),
}

impl Head {
    fn load(kind: &str, dir: &Path) -> Head {
        let (cpu, f32) = (Device::Cpu, DType::F32);
        match kind {
            "seq" => Head::Seq(Box::new(
                BertForSequenceClassification::from_pretrained(dir, cpu, f32).unwrap(),
            )),
            "tok" => Head::Tok(Box::new(
                BertForTokenClassification::from_pretrained(dir, cpu, f32).unwrap(),
            )),
            _ => Head::Mlm(Box::new(
                BertForMaskedLM::from_pretrained(dir, cpu, f32).unwrap(),
            )),
        }
    }

    fn forward(&self, x: &[Tensor; 3], labels: Option<&Tensor>) -> HeadOutput {
        let (ids, mask, types) = (&x[0], Some(&x[1]), Some(&x[2]));
        match self {
            Head::Seq(m) => m.forward(ids, mask, types, labels),
            Head::Tok(m) => m.forward(ids, mask, types, labels),
            Head::Mlm(m) => m.forward(ids, mask, types, labels),
        }
        .unwrap()
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        match self {
            Head::Seq(m) => m.named_parameters(),
            Head::Tok(m) => m.named_parameters(),
            Head::Mlm(m) => m.named_parameters(),
        }
    }

    fn save_pretrained(&self, dir: &Path) {
        match self {
            Head::Seq(m) => m.save_pretrained(dir),
            Head::Tok(m) => m.save_pretrained(dir),
            Head::Mlm(m) => m.save_pretrained(dir),
        }
        .unwrap()
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn models() -> PathBuf {
    fixtures_dir().join("models")
}

/// transformers' `AutoModelFor…` loads `dir` and gives `logits` on the inputs (the venv's
/// Python), else the test says loudly that it skipped that check.
fn transformers_reloads(kind: &str, dir: &Path, x: &[Tensor; 3], logits: &Tensor) {
    let py = std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ember/venv")
        })
        .join("bin/python");
    if !py.exists() {
        skip_or_fail(
            format!(
                "{} is missing: transformers' reload not checked",
                py.display()
            ),
            "EMBER_REQUIRE_VENV",
        );
        return;
    }
    let out = dir.join("ember_logits.safetensors");
    let t = [
        ("ids", &x[0]),
        ("mask", &x[1]),
        ("types", &x[2]),
        ("logits", logits),
    ];
    ember_weights::save_safetensors(&out, &t, None, None).unwrap();
    let script = fixtures_dir().join("../../scripts/make_head_fixtures.py");
    let status = std::process::Command::new(py)
        .args([script.as_os_str(), "--check".as_ref(), kind.as_ref()])
        .arg(dir)
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "transformers' logits on Ember's {kind} head differ"
    );
    std::fs::remove_file(out).unwrap();
}

#[test]
fn heads_match_transformers_and_round_trip() {
    let r = Checkpoint::open(models().join("tiny-bert-heads_ref.safetensors")).unwrap();
    let get = |k: &str| r.load(k, Device::Cpu, None).unwrap();
    let x = [get("ids"), get("mask"), get("types")];
    let tmp = std::env::temp_dir().join(format!("ember-heads-{}", std::process::id()));
    for (case, kind) in [
        ("seq", "seq"),
        ("seq_multi", "seq"),
        ("tok", "tok"),
        ("mlm", "mlm"),
    ] {
        let model = Head::load(kind, &models().join(format!("tiny-bert-{kind}")));
        let out = model.forward(&x, Some(&get(&format!("{case}.labels"))));
        let dl = max_diff(&out.logits, &get(&format!("{case}.logits")));
        let loss = out.loss.unwrap();
        let dloss = max_diff(&loss.reshape(&[1]).unwrap(), &get(&format!("{case}.loss")));
        let grads = loss.backward().unwrap();
        let (mut worst, mut n) = (0.0f32, 0);
        for (name, p) in model.named_parameters() {
            let want = get(&format!("{case}.grad.{name}"));
            let got = grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("{case}: no grad of {name}"));
            let d = max_diff(got, &want);
            assert!(d < 1e-5, "{case}: gradient of {name} differs by {d}");
            worst = worst.max(d);
            n += 1;
        }
        let want_n = r
            .names()
            .iter()
            .filter(|k| k.starts_with(&format!("{case}.grad.")))
            .count();
        assert_eq!(n, want_n, "{case}: every parameter's gradient");
        eprintln!("{case}: logits {dl:e}, loss {dloss:e}, {n} gradients within {worst:e}");
        assert!(
            dl < 1e-5 && dloss < 1e-5,
            "{case}: logits {dl}, loss {dloss}"
        );

        // Saved by Ember: Ember reloads it exactly, transformers with the same logits.
        let dir = tmp.join(case);
        model.save_pretrained(&dir);
        let again = Head::load(kind, &dir);
        assert_eq!(
            again.forward(&x, None).logits.to_vec::<f32>().unwrap(),
            out.logits.to_vec::<f32>().unwrap()
        );
        transformers_reloads(kind, &dir, &x, &out.logits);
    }

    // A new classifier on an encoder-only checkpoint, as from_pretrained(path, num_labels=4).
    let fresh = BertForSequenceClassification::from_pretrained_with_labels(
        models().join("tiny-bert"),
        4,
        Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert_eq!(
        fresh.newly_initialized(),
        ["classifier.weight", "classifier.bias"]
    );
    let logits = fresh
        .forward(&x[0], Some(&x[1]), Some(&x[2]), None)
        .unwrap()
        .logits;
    assert_eq!(logits.dims(), &[2, 4]);
    let dir = tmp.join("fresh");
    fresh.save_pretrained(&dir).unwrap();
    transformers_reloads("seq", &dir, &x, &logits);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn causal_sequence_classifiers_match_transformers() {
    use ember_models::AutoModelForSequenceClassification as Auto;
    let r = Checkpoint::open(models().join("causal-seq_ref.safetensors")).unwrap();
    let get = |k: &str| r.load(k, Device::Cpu, None).unwrap();
    let (ids, mask, labels) = (get("ids"), get("mask"), get("labels"));
    let tmp = std::env::temp_dir().join(format!("ember-causal-heads-{}", std::process::id()));
    for (name, base) in [
        ("gpt2", "tiny-gpt2"),
        ("llama", "tiny-llama"),
        ("gemma3", "tiny-gemma3"),
    ] {
        let dir = models().join(format!("{base}-seq"));
        let model = Auto::from_pretrained(&dir, Device::Cpu, DType::F32).unwrap();
        let out = model.forward(&ids, Some(&mask), Some(&labels)).unwrap();
        let dl = max_diff(&out.logits, &get(&format!("{name}.logits")));
        let loss = out.loss.unwrap();
        let dloss = max_diff(&loss.reshape(&[1]).unwrap(), &get(&format!("{name}.loss")));
        let grads = loss.backward().unwrap();
        let (mut worst, mut n) = (0.0f32, 0);
        for (pname, p) in model.named_parameters() {
            let want = get(&format!("{name}.grad.{pname}"));
            let got = grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("{name}: no grad of {pname}"));
            let d = max_diff(got, &want);
            assert!(d < 1e-5, "{name}: gradient of {pname} differs by {d}");
            worst = worst.max(d);
            n += 1;
        }
        let want_n = r
            .names()
            .iter()
            .filter(|k| k.starts_with(&format!("{name}.grad.")))
            .count();
        assert_eq!(n, want_n, "{name}: every parameter's gradient");
        eprintln!("{name}: logits {dl:e}, loss {dloss:e}, {n} gradients within {worst:e}");
        assert!(
            dl < 1e-5 && dloss < 1e-5,
            "{name}: logits {dl}, loss {dloss}"
        );

        let saved = tmp.join(name);
        model.save_pretrained(&saved).unwrap();
        let again = Auto::from_pretrained(&saved, Device::Cpu, DType::F32).unwrap();
        let back = again.forward(&ids, Some(&mask), None).unwrap().logits;
        assert_eq!(
            back.to_vec::<f32>().unwrap(),
            out.logits.to_vec::<f32>().unwrap()
        );
        let types = Tensor::zeros(ids.dims(), DType::I64, Device::Cpu).unwrap();
        transformers_reloads(
            "causal-seq",
            &saved,
            &[ids.clone(), mask.clone(), types],
            &out.logits,
        );
    }
    // A language model's checkpoint gets a new score; left padding and a missing pad id are
    // errors that say why.
    let fresh =
        Auto::from_pretrained_with_labels(models().join("tiny-llama"), 2, Device::Cpu, DType::F32)
            .unwrap();
    let Auto::Causal(inner) = &fresh else {
        panic!("llama is causal")
    };
    assert_eq!(inner.newly_initialized(), ["score.weight"]);
    assert_eq!(
        fresh.forward(&ids, None, None).unwrap().logits.dims(),
        &[2, 2]
    );
    let left = Tensor::from_vec(
        vec![0i64, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1],
        &[2, 6],
        Device::Cpu,
    )
    .unwrap();
    let err = fresh
        .forward(&ids, Some(&left), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("right padding"), "{err}");
    let gpt2 = Auto::from_pretrained(models().join("tiny-gpt2"), Device::Cpu, DType::F32).unwrap();
    let err = gpt2.forward(&ids, None, None).err().unwrap().to_string();
    assert!(err.contains("pad_token_id"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}
