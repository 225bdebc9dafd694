//! A two-layer MLP and a one-block transformer built from Ember's ops (before ember-nn exists)
//! give PyTorch's loss and every parameter gradient, for the same weights and batch
//! (`tests/fixtures/models.safetensors`, written by `scripts/make_fixtures.py`).

use ember_testing as common;
use ember_testing::on_every_device;

use std::collections::BTreeMap;

use ember_core::Backward;
use ember_core::{AttentionOpts, CrossEntropyOpts, Device, Result, Tensor};
use safetensors::SafeTensors;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            bytes: common::read_fixture("models.safetensors"),
        }
    }

    fn get(&self, name: &str, d: Device) -> Tensor {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        common::load(&st, name, d).unwrap()
    }

    /// Parameters `prefix/<name>` as tracked leaves.
    fn params(&self, prefix: &str, names: &[&str], d: Device) -> BTreeMap<String, Tensor> {
        names
            .iter()
            .map(|n| {
                let t = self
                    .get(&format!("{prefix}/{n}"), d)
                    .requires_grad(true)
                    .unwrap();
                (n.to_string(), t)
            })
            .collect()
    }

    /// Compares the loss and every gradient with PyTorch's.
    fn check(&self, prefix: &str, loss: &Tensor, p: &BTreeMap<String, Tensor>, d: Device) {
        let theirs = self.get(&format!("{prefix}/loss"), Device::Cpu);
        let ours = loss.to_device(Device::Cpu).unwrap();
        common::assert_close(&ours, &theirs, 1e-5, 1e-6)
            .unwrap_or_else(|e| panic!("{prefix} loss: {e}"));
        let grads = loss.backward().unwrap();
        let mut worst = 0.0f64;
        for (name, t) in p {
            let theirs = self.get(&format!("{prefix}/grad.{name}"), Device::Cpu);
            let ours = grads
                .get(t)
                .unwrap_or_else(|| panic!("{prefix}: no gradient for {name}"));
            let ours = ours.to_device(Device::Cpu).unwrap();
            let err = common::assert_close(&ours, &theirs, 1e-4, 1e-5)
                .unwrap_or_else(|e| panic!("{prefix} gradient of {name} on {d}: {e}"));
            worst = worst.max(err);
        }
        eprintln!(
            "{d}: {prefix}: {} parameter gradients match PyTorch, max |diff| {worst:e}",
            p.len()
        );
    }
}

fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.transpose(0, 1)?)?;
    match b {
        Some(b) => y.add(b),
        None => Ok(y),
    }
}

fn mlp(d: Device) {
    let f = Fixture::new();
    let p = f.params("mlp", &["w1", "b1", "w2", "b2"], d);
    let (x, t) = (f.get("mlp/x", d), f.get("mlp/t", d));
    let h = linear(&x, &p["w1"], Some(&p["b1"]))
        .unwrap()
        .relu()
        .unwrap(); // (8, 16)
    let logits = linear(&h, &p["w2"], Some(&p["b2"])).unwrap(); // (8, 3)
    let loss = logits
        .cross_entropy(&t, CrossEntropyOpts::default())
        .unwrap();
    f.check("mlp", &loss, &p, d);
}

fn block(d: Device) {
    let f = Fixture::new();
    let names = [
        "wte", "wpe", "ln1.w", "ln1.b", "attn.w", "attn.b", "proj.w", "ln2.w", "ln2.b", "fc.w",
        "fc2.w", "lnf.w",
    ];
    let p = f.params("block", &names, d);
    let (ids, targets) = (f.get("block/ids", d), f.get("block/targets", d));
    let (b, t, c, h) = (2usize, 6usize, 16usize, 4usize);
    let run = || -> Result<Tensor> {
        let x = p["wte"].embedding(&ids)?.add(&p["wpe"])?; // (B, T, C)
        let a = x.layer_norm(Some(&p["ln1.w"]), Some(&p["ln1.b"]), 1e-5)?;
        let qkv = linear(&a, &p["attn.w"], Some(&p["attn.b"]))?; // (B, T, 3C)
        let heads = |z: &Tensor| -> Result<Tensor> {
            z.reshape_to(&[b, t, h, c / h])?.transpose(1, 2) // (B, H, T, D)
        };
        let parts = qkv.split(c, -1)?;
        let (q, k, v) = (heads(&parts[0])?, heads(&parts[1])?, heads(&parts[2])?);
        let opts = AttentionOpts {
            causal: true,
            ..Default::default()
        };
        let y = q.scaled_dot_product_attention(&k, &v, &opts)?; // (B, H, T, D)
        let y = y.transpose(1, 2)?.reshape_to(&[b, t, c])?;
        let x = x.add(&linear(&y, &p["proj.w"], None)?)?;
        let m = x.layer_norm(Some(&p["ln2.w"]), Some(&p["ln2.b"]), 1e-5)?;
        let mlp = linear(
            &linear(&m, &p["fc.w"], None)?.gelu_tanh()?,
            &p["fc2.w"],
            None,
        )?;
        let x = x.add(&mlp)?.rms_norm(Some(&p["lnf.w"]), 1e-6)?;
        let logits = x.matmul(&p["wte"].transpose(0, 1)?)?; // (B, T, V), tied head
        logits
            .reshape(&[-1, 11])?
            .cross_entropy(&targets.reshape(&[-1])?, CrossEntropyOpts::default())
    };
    f.check("block", &run().unwrap(), &p, d);
}

on_every_device!(two_layer_mlp, mlp);
on_every_device!(one_block_transformer, block);
