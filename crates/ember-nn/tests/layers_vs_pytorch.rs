//! Every layer's forward, parameter gradients and input gradient against the PyTorch module
//! with the same weights (`scripts/make_nn_fixtures.py`), on every built device. The weights
//! come from state dicts saved by PyTorch, loaded strictly by `VarStore::load`.

use ember_testing as common;
use ember_testing::on_every_device;

use ember_core::Backward;
use ember_core::{DType, Device, Result, Tensor};
use ember_nn::{
    Activation, AttentionConfig, Embedding, GatedMlp, LayerNorm, Linear, LoadOptions, Mlp, Module,
    MultiHeadAttention, RmsNorm, TransformerBlock, VarBuilder, VarStore, loss,
};
use ember_weights::Checkpoint;

type Forward = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

fn attention_cfg() -> AttentionConfig {
    AttentionConfig {
        dim: 16,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 4,
        qkv_bias: false,
        o_bias: false,
        causal: true,
        rope: Some((10000.0, 64)),
    }
}

/// Builds the Ember module for a fixture and returns its forward.
fn build(name: &str, vb: VarBuilder, ckpt: &Checkpoint, d: Device) -> Result<Forward> {
    Ok(match name {
        "linear" => {
            let m = Linear::new(vb, 7, 5, true)?;
            Box::new(move |x| m.forward(x))
        }
        "linear_nobias" => {
            let m = Linear::new(vb, 7, 5, false)?;
            Box::new(move |x| m.forward(x))
        }
        "embedding" => {
            let m = Embedding::new(vb, 11, 6)?;
            Box::new(move |x| m.forward(x))
        }
        "layer_norm" => {
            let m = LayerNorm::new(vb, 6, 1e-5, true)?;
            Box::new(move |x| m.forward(x))
        }
        "rms_norm" => {
            let m = RmsNorm::new(vb, 6, 1e-6)?;
            Box::new(move |x| m.forward(x))
        }
        "mlp" => {
            let m = Mlp::new(vb, 6, 10, Activation::GeluTanh, true, ("c_fc", "c_proj"))?;
            Box::new(move |x| m.forward(x))
        }
        "gated_mlp" => {
            let m = GatedMlp::new(vb, 16, 24, Activation::Silu, false)?;
            Box::new(move |x| m.forward(x))
        }
        "attention" => {
            let m = MultiHeadAttention::new(vb, attention_cfg())?;
            Box::new(move |x| m.forward(x))
        }
        "block" => {
            let m = TransformerBlock::new(vb, attention_cfg(), 24, 1e-6)?;
            Box::new(move |x| m.forward(x))
        }
        "cross_attention" => {
            let cfg = AttentionConfig {
                dim: 12,
                n_heads: 3,
                n_kv_heads: 1,
                head_dim: 4,
                qkv_bias: true,
                o_bias: true,
                causal: false,
                rope: None,
            };
            let m = MultiHeadAttention::new(vb, cfg)?;
            let (ctx, mask) = (ckpt.load("context", d, None)?, ckpt.load("mask", d, None)?);
            Box::new(move |x| m.forward_cross(x, &ctx, Some(&mask)))
        }
        "mse" => {
            let t = ckpt.load("target", d, None)?;
            Box::new(move |x| loss::mse(x, &t))
        }
        "bce_with_logits" => {
            let t = ckpt.load("target", d, None)?;
            Box::new(move |x| loss::binary_cross_entropy_with_logits(x, &t))
        }
        other => panic!("no Ember module for fixture {other}"),
    })
}

const MODULES: &[&str] = &[
    "linear",
    "linear_nobias",
    "embedding",
    "layer_norm",
    "rms_norm",
    "mlp",
    "gated_mlp",
    "attention",
    "block",
    "cross_attention",
    "mse",
    "bce_with_logits",
];

fn close(name: &str, what: &str, ours: &Tensor, theirs: &Tensor) -> f64 {
    let ours = ours.to_device(Device::Cpu).unwrap();
    common::assert_close(&ours, theirs, 1e-4, 1e-5).unwrap_or_else(|e| panic!("{name} {what}: {e}"))
}

fn layers_match(d: Device) {
    let dir = common::fixtures_dir().join("nn");
    let mut worst = 0.0f64;
    for name in MODULES {
        let ckpt = Checkpoint::open(dir.join(format!("{name}.safetensors"))).unwrap();
        let store = VarStore::new(d, DType::F32);
        let forward = build(name, VarBuilder::new(&store), &ckpt, d).unwrap();
        let opts = LoadOptions {
            ignore: vec![
                "__*".into(),
                "target".into(),
                "context".into(),
                "mask".into(),
            ],
            ..Default::default()
        };
        let report = store.load(&ckpt, &opts).unwrap();
        assert_eq!(report.loaded, store.names().len(), "{name}");
        let cpu = |k: &str| ckpt.load(k, Device::Cpu, None).unwrap();
        let mut x = ckpt.load("__input", d, None).unwrap();
        if x.dtype().is_float() {
            x = x.requires_grad(true).unwrap();
        }
        let y = forward(&x).unwrap();
        worst = worst.max(close(name, "output", &y, &cpu("__output")));
        let grads = y
            .backward_with(&ckpt.load("__gout", d, None).unwrap())
            .unwrap();
        for (pname, p) in store.named_parameters() {
            let g = grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("{name}: no grad for {pname}"));
            worst = worst.max(close(
                name,
                &format!("grad of {pname}"),
                g,
                &cpu(&format!("__grad.{pname}")),
            ));
        }
        if ckpt.contains("__grad_input") {
            let g = grads.get(&x).unwrap();
            worst = worst.max(close(name, "input grad", g, &cpu("__grad_input")));
        }
    }
    eprintln!(
        "{d}: {} modules match PyTorch (output and gradients), max |diff| {worst:e}",
        MODULES.len()
    );
}

on_every_device!(layers, layers_match);
