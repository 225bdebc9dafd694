//! What a first program in a user's crate looks like: a tiny classifier trained a few steps
//! with Ember as a dependency, then a token streamed from a small GPT.

use ember::models::{Flow, GenerateOpts, Gpt2, Gpt2Config, generate_with};
use ember::nn::{Linear, Module, VarBuilder, VarStore};
use ember::optim::{AdamW, AdamWConfig, Optimizer};
use ember::prelude::*;

fn main() -> Result<()> {
    manual_seed(0);
    // A linear classifier on two separable clusters.
    let store = VarStore::new(Device::Cpu, DType::F32);
    let head = Linear::new(VarBuilder::new(&store).pp("head"), 4, 2, true)?;
    let mut opt = AdamW::new(store.trainable_parameters(), AdamWConfig::with_lr(0.1));
    let x = Tensor::randn(&[64, 4], DType::F32, Device::Cpu)?; // (N, 4)
    let y = x
        .narrow(1, 0, 1)?
        .gt_scalar(0.0)?
        .to_dtype(DType::I64)?
        .reshape(&[-1])?; // (N,)
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..30 {
        let loss = head.forward(&x)?.cross_entropy(&y, Default::default())?;
        last = loss.to_scalar::<f32>()?;
        first.get_or_insert(last);
        opt.step(&loss.backward()?)?;
    }
    println!("classifier loss {:.3} -> {last:.3}", first.unwrap_or(last));
    assert!(last < first.unwrap_or(last), "the loss must fall");

    // Generation from a tiny random GPT-2, stopped by the callback after 3 tokens.
    let cfg = Gpt2Config {
        vocab_size: 50,
        n_positions: 32,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        activation_function: "gelu_new".into(),
        embd_pdrop: 0.1,
        attn_pdrop: 0.1,
        resid_pdrop: 0.1,
    };
    let model = Gpt2::new(cfg, Device::Cpu, DType::F32, 0)?;
    let opts = GenerateOpts {
        max_new_tokens: 10,
        ..Default::default()
    };
    let mut n = 0;
    let out = generate_with(&model, &[1, 2, 3], Device::Cpu, &opts, |_| {
        n += 1;
        Ok(if n == 3 { Flow::Stop } else { Flow::Continue })
    })?;
    println!("generated {out:?}");
    assert_eq!(out.len(), 3);
    Ok(())
}
