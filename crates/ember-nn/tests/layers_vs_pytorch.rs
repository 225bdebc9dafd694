//! Every layer's forward, parameter gradients and input gradient against the PyTorch module
//! with the same weights (`scripts/make_nn_fixtures.py`), on every built device. The weights
//! come from state dicts saved by PyTorch, loaded strictly by `VarStore::load`.

use ember_testing as common;
use ember_testing::on_every_device;

use ember_core::Backward;
use ember_core::{ConvOpts, DType, Device, PoolOpts, Result, Tensor};
use ember_nn::{
    Activation, AttentionConfig, BatchNorm, Block, BlockConfig, Conv1d, Conv2d, Embedding,
    GatedMlp, GroupNorm, LayerNorm, Linear, LoadOptions, Mlp, Module, MultiHeadAttention, RmsNorm,
    VarBuilder, VarStore, loss,
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
            let m = Block::new(vb, BlockConfig::llama(attention_cfg(), 24, 1e-6))?;
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
        "conv1d" => {
            let o = ConvOpts {
                stride: [2],
                padding: [1],
                groups: 2,
                ..ConvOpts::default()
            };
            let m = Conv1d::new(vb, 4, 6, [3], o, true)?;
            Box::new(move |x| m.forward(x))
        }
        "conv2d" => {
            let o = ConvOpts {
                padding: [1, 0],
                dilation: [1, 2],
                ..ConvOpts::default()
            };
            let m = Conv2d::new(vb, 3, 5, [3, 2], o, true)?;
            Box::new(move |x| m.forward(x))
        }
        "batch_norm2d" => {
            let m = BatchNorm::new(vb, 3)?;
            Box::new(move |x| m.forward(x))
        }
        "batch_norm1d_eval" => {
            let m = BatchNorm::new(vb, 4)?;
            Box::new(move |x| m.forward(x))
        }
        "group_norm" => {
            let m = GroupNorm::new(vb, 2, 6)?;
            Box::new(move |x| m.forward(x))
        }
        "small_cnn" => {
            let o = ConvOpts {
                padding: [1, 1],
                ..ConvOpts::default()
            };
            let conv = Conv2d::new(vb.pp("conv"), 2, 4, [3, 3], o, true)?;
            let bn = BatchNorm::new(vb.pp("bn"), 4)?;
            let fc = Linear::new(vb.pp("fc"), 16, 3, true)?;
            Box::new(move |x| {
                let h = bn
                    .forward(&conv.forward(x)?)?
                    .relu()?
                    .max_pool2d(PoolOpts::new([2, 2]))?;
                let avg = PoolOpts::new([3, 3]).stride([1, 1]).padding([1, 1]);
                let h = h.avg_pool2d(avg, false)?.adaptive_avg_pool2d([2, 2])?;
                fc.forward(&h.flatten(1, -1)?)
            })
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
    "conv1d",
    "conv2d",
    "batch_norm2d",
    "batch_norm1d_eval",
    "group_norm",
    "small_cnn",
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
                "*num_batches_tracked".into(),
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
        if name.ends_with("_eval") {
            store.eval();
        }
        // Batch norm: start from PyTorch's running statistics before its forward, and end
        // with the ones it updated.
        let running: Vec<_> = store
            .named_parameters()
            .into_iter()
            .filter(|(n, _)| n.contains("running_"))
            .collect();
        for (pname, p) in &running {
            p.set(&ckpt.load(&format!("__start.{pname}"), d, None).unwrap())
                .unwrap();
        }
        let y = forward(&x).unwrap();
        worst = worst.max(close(name, "output", &y, &cpu("__output")));
        for (pname, p) in &running {
            worst = worst.max(close(name, pname, &p.tensor(), &cpu(pname)));
        }
        let grads = y
            .backward_with(&ckpt.load("__gout", d, None).unwrap())
            .unwrap();
        for (pname, p) in store.named_parameters() {
            if !p.is_trainable() {
                continue; // running statistics
            }
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
