//! LoRA against peft (`scripts/make_lora_fixtures.py`): adapters peft made on the tiny Llama
//! (q/v/down projections) and GPT-2 (Conv1D `c_attn`/`c_proj`, `fan_in_fan_out`, rsLoRA) load
//! with peft's logits, loss and adapter gradients; merging gives `merge_and_unload`'s weights;
//! an adapter trained here changes only adapter parameters and loads back in Ember and, with
//! the venv of `scripts/setup_venv.sh`, in peft (`scripts/check_peft_adapter.py`).

use std::path::PathBuf;

use ember_core::{Backward, DType, Device, Tensor};
use ember_models::AutoModelForCausalLM;
use ember_nn::lora::{AdapterFiles, Lora, LoraConfig};
use ember_testing::skip_or_fail;
use ember_weights::Checkpoint;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// (adapter, base model)
const CASES: [(&str, &str); 2] = [
    ("tiny-llama-lora", "tiny-llama"),
    ("tiny-gpt2-lora", "tiny-gpt2"),
];

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn base(name: &str) -> AutoModelForCausalLM {
    AutoModelForCausalLM::from_pretrained(
        fixtures().join("models").join(name),
        Device::Cpu,
        DType::F32,
    )
    .unwrap()
}

fn files(model: &AutoModelForCausalLM) -> AdapterFiles {
    AdapterFiles {
        module_prefix: model.hf_module_prefix().to_string(),
        base_model_name_or_path: None,
    }
}

#[test]
fn peft_adapters_give_peft_logits_loss_and_gradients() {
    for (adapter, base_name) in CASES {
        let model = base(base_name);
        let lora = Lora::load(
            &fixtures().join("lora").join(adapter),
            model.store(),
            &files(&model),
        )
        .unwrap();
        let r = Checkpoint::open(
            fixtures()
                .join("lora")
                .join(format!("{adapter}_ref.safetensors")),
        )
        .unwrap();
        let get = |k: &str| r.load(k, Device::Cpu, None).unwrap();
        model.eval();
        let d_logits = max_diff(&model.forward(&get("ids")).unwrap(), &get("logits"));
        assert!(d_logits < 1e-5, "{adapter}: logits differ by {d_logits}");
        model.train();
        let loss = model.loss(&get("ids"), &get("labels")).unwrap();
        let d_loss = max_diff(&loss.reshape(&[1]).unwrap(), &get("loss"));
        assert!(d_loss < 1e-5, "{adapter}: loss differs by {d_loss}");
        let grads = loss.backward().unwrap();
        let prefix = model.hf_module_prefix();
        let mut n = 0;
        for (name, p) in lora.store.named_parameters() {
            let ours = grads.get(&p.tensor()).expect("adapter gradient");
            let d = max_diff(ours, &get(&format!("grad.{prefix}{name}")));
            assert!(d < 1e-5, "{adapter}: gradient of {name} differs by {d}");
            n += 1;
        }
        assert_eq!(
            n,
            r.names().iter().filter(|k| k.starts_with("grad.")).count()
        );
        for (name, p) in model.store().named_parameters() {
            assert!(
                grads.get(&p.tensor()).is_none(),
                "{adapter}: frozen {name} got a gradient"
            );
        }
        eprintln!("{adapter}: logits {d_logits:e}, loss {d_loss:e}, {n} adapter gradients");
    }
}

#[test]
fn merge_matches_peft_merge_and_unload_and_unmerge_restores() {
    let ids = Tensor::from_vec(vec![3i64, 1, 4, 1, 5, 9, 2], &[1, 7], Device::Cpu).unwrap();
    for (adapter, base_name) in CASES {
        let model = base(base_name);
        model.eval();
        let before: Vec<(String, Tensor)> = model
            .store()
            .named_parameters()
            .into_iter()
            .map(|(n, p)| (n, p.tensor().detach()))
            .collect();
        let lora = Lora::load(
            &fixtures().join("lora").join(adapter),
            model.store(),
            &files(&model),
        )
        .unwrap();
        let adapted = model.forward(&ids).unwrap();
        lora.merge().unwrap();
        let merged = model.forward(&ids).unwrap();
        assert!(
            max_diff(&adapted, &merged) < 1e-5,
            "{adapter}: merged logits"
        );
        let r = Checkpoint::open(
            fixtures()
                .join("lora")
                .join(format!("{adapter}_ref.safetensors")),
        )
        .unwrap();
        let prefix = model.hf_module_prefix();
        let mut n = 0;
        for k in r.names().iter().filter(|k| k.starts_with("merged.")) {
            let name = k.trim_start_matches("merged.").trim_start_matches(prefix);
            let ours = model.store().get(name).unwrap().tensor();
            let d = max_diff(&ours, &r.load(k, Device::Cpu, None).unwrap());
            assert!(
                d < 1e-6,
                "{adapter}: merged {name} differs from peft's by {d}"
            );
            n += 1;
        }
        assert_eq!(
            n,
            lora.modules().len(),
            "{adapter}: every adapted weight compared"
        );
        assert!(lora.merge().is_err(), "merging twice");
        lora.unmerge().unwrap();
        for (name, w) in &before {
            let d = max_diff(&model.store().get(name).unwrap().tensor(), w);
            assert!(d < 1e-6, "{adapter}: {name} after unmerge differs by {d}");
        }
        // merge_and_unload → save_pretrained → a plain model with the adapted logits.
        lora.merge_and_unload().unwrap();
        let dir = std::env::temp_dir().join(format!("ember-lora-{}-{adapter}", std::process::id()));
        model.save_pretrained(&dir).unwrap();
        let plain = AutoModelForCausalLM::from_pretrained(&dir, Device::Cpu, DType::F32).unwrap();
        assert!(max_diff(&plain.forward(&ids).unwrap(), &adapted) < 1e-5);
        std::fs::remove_dir_all(&dir).ok();
    }
}

fn venv_python() -> Option<PathBuf> {
    let p = std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ember/venv")
        })
        .join("bin/python");
    if p.exists() {
        return Some(p);
    }
    skip_or_fail(
        format!(
            "{} is missing: run `bash scripts/setup_venv.sh` to check the adapter with peft",
            p.display()
        ),
        "EMBER_REQUIRE_VENV",
    );
    None
}

#[test]
fn an_adapter_trained_here_loads_in_ember_and_peft() {
    use ember_optim::{AdamW, AdamWConfig, Optimizer};
    let model = base("tiny-llama");
    let cfg = LoraConfig::new(4, 8.0, &["q_proj", "k_proj", "o_proj"]);
    let lora = Lora::apply(model.store(), cfg, 7).unwrap();
    assert_eq!(lora.modules().len(), 6);
    let frozen: Vec<(String, Tensor)> = model
        .store()
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.tensor().detach()))
        .collect();
    let ids = Tensor::from_vec(
        (0..16).map(|i| (i * 7 % 60) as i64).collect(),
        &[2, 8],
        Device::Cpu,
    )
    .unwrap();
    let mut opt = AdamW::new(
        lora.store.trainable_parameters(),
        AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let first = model.loss(&ids, &ids).unwrap().to_scalar::<f32>().unwrap();
    for _ in 0..5 {
        let loss = model.loss(&ids, &ids).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads).unwrap();
    }
    let last = model.loss(&ids, &ids).unwrap().to_scalar::<f32>().unwrap();
    assert!(last < first, "training lowers the loss: {first} -> {last}");
    for (name, w) in &frozen {
        let now = model.store().get(name).unwrap().tensor();
        assert_eq!(
            now.to_vec::<f32>().unwrap(),
            w.to_vec::<f32>().unwrap(),
            "{name} changed"
        );
    }
    model.eval();
    let logits = model.forward(&ids).unwrap();
    let dir = std::env::temp_dir().join(format!("ember-lora-trained-{}", std::process::id()));
    lora.save(&dir, &files(&model)).unwrap();

    let fresh = base("tiny-llama");
    fresh.eval();
    let _back = Lora::load(&dir, fresh.store(), &files(&fresh)).unwrap();
    assert_eq!(
        fresh.forward(&ids).unwrap().to_vec::<f32>().unwrap(),
        logits.to_vec::<f32>().unwrap(),
        "Ember reloads its adapter"
    );
    let out = dir.join("ember_logits.safetensors");
    ember_weights::save_safetensors(&out, &[("ids", &ids), ("logits", &logits)], None, None)
        .unwrap();
    if let Some(py) = venv_python() {
        let script = fixtures().join("../../scripts/check_peft_adapter.py");
        let status = std::process::Command::new(py)
            .arg(script)
            .arg(fixtures().join("models/tiny-llama"))
            .arg(&dir)
            .arg(&out)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "peft's logits on Ember's adapter differ (see above)"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// QLoRA: adapters in f32 beside a quantized (Q8_0) or bf16 base train through it; their
/// gradients match those beside the base's dequantized f32 weights within the base's
/// rounding.
#[test]
fn adapters_train_beside_quantized_and_bf16_bases() {
    use ember_core::quant::QFormat;
    let ids = Tensor::from_vec(
        (0..14).map(|i| (i * 5 % 60) as i64).collect(),
        &[2, 7],
        Device::Cpu,
    )
    .unwrap();
    let grads_of = |model: &AutoModelForCausalLM| {
        let lora = Lora::apply(
            model.store(),
            LoraConfig::new(4, 8.0, &["q_proj", "v_proj"]),
            3,
        )
        .unwrap();
        // A nonzero B, so that gradients reach A too.
        for (name, p) in lora.store.named_parameters() {
            if name.ends_with("lora_B.weight") {
                p.set(&p.tensor().ones_like().unwrap().mul_scalar(0.01).unwrap())
                    .unwrap();
            }
        }
        let loss = model.loss(&ids, &ids).unwrap();
        let grads = loss.backward().unwrap();
        let out: Vec<Vec<f32>> = lora
            .store
            .named_parameters()
            .iter()
            .map(|(_, p)| grads.get(&p.tensor()).unwrap().to_vec::<f32>().unwrap())
            .collect();
        lora.unload();
        (
            loss.to_dtype(DType::F32)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            out,
        )
    };
    let quantized = base("tiny-llama");
    let n = quantized.store().quantize(QFormat::Q8_0).unwrap().len();
    assert!(n > 0, "some matrices quantized");
    let (q_loss, q_grads) = grads_of(&quantized);
    // The same weights dequantized, dense.
    let dense = base("tiny-llama");
    for (name, p) in quantized.store().named_parameters() {
        dense.store().get(&name).unwrap().set(&p.tensor()).unwrap();
    }
    let (d_loss, d_grads) = grads_of(&dense);
    assert!((q_loss - d_loss).abs() < 1e-2, "loss {q_loss} vs {d_loss}");
    for (a, b) in q_grads.iter().zip(&d_grads) {
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff / scale < 0.05,
            "adapter gradient differs by {diff} (scale {scale})"
        );
    }
    // bf16 base: f32 adapters, gradients flow and are finite.
    let bf16 = AutoModelForCausalLM::from_pretrained(
        fixtures().join("models/tiny-llama"),
        Device::Cpu,
        DType::BF16,
    )
    .unwrap();
    let (b_loss, b_grads) = grads_of(&bf16);
    assert!(
        (b_loss - d_loss).abs() < 0.05,
        "bf16 loss {b_loss} vs {d_loss}"
    );
    assert!(b_grads.iter().flatten().all(|g| g.is_finite()));
    assert!(b_grads.iter().flatten().any(|g| *g != 0.0));
}

/// Gradient checkpointing on the tiny Llama and GPT-2 with dropout on (LoRA's, p = 0.2, in
/// every checkpointed layer): gradients bit-identical to the run without it.
#[test]
fn checkpointing_keeps_gradients_bit_identical_with_dropout() {
    let ids = Tensor::from_vec(
        (0..14).map(|i| (i * 3 % 50) as i64).collect(),
        &[2, 7],
        Device::Cpu,
    )
    .unwrap();
    for (name, targets) in [
        ("tiny-llama", &["q_proj", "v_proj", "down_proj"][..]),
        ("tiny-gpt2", &["c_attn", "c_fc"][..]),
    ] {
        let model = base(name);
        let mut cfg = LoraConfig::new(4, 8.0, targets);
        cfg.lora_dropout = 0.2;
        let lora = Lora::apply(model.store(), cfg, 1).unwrap();
        for (n, p) in lora.store.named_parameters() {
            if n.ends_with("lora_B.weight") {
                p.set(&p.tensor().ones_like().unwrap().mul_scalar(0.05).unwrap())
                    .unwrap();
            }
        }
        model.train();
        let run = |on: bool| {
            model.gradient_checkpointing(on);
            ember_core::manual_seed(9);
            let loss = model.loss(&ids, &ids).unwrap();
            let grads = loss.backward().unwrap();
            let mut out = vec![loss.to_scalar::<f32>().unwrap().to_bits()];
            for (_, p) in lora.store.named_parameters() {
                let g = grads.get(&p.tensor()).unwrap().to_vec::<f32>().unwrap();
                out.extend(g.iter().map(|x| x.to_bits()));
            }
            out
        };
        let (plain, checkpointed) = (run(false), run(true));
        assert_eq!(
            plain, checkpointed,
            "{name}: checkpointing changed the gradients"
        );
        model.eval();
        model.gradient_checkpointing(false);
        let eval_loss = model.loss(&ids, &ids).unwrap().to_scalar::<f32>().unwrap();
        assert_ne!(
            eval_loss.to_bits(),
            plain[0],
            "{name}: dropout was on in training"
        );
    }
}
