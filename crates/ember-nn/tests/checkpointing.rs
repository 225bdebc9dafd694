//! Gradient checkpointing through `ember_core::checkpoint`: GPT-style blocks with attention
//! and residual dropout give bit-identical gradients (parameters and input) with and without
//! it, because the recompute replays the dropout masks; the graph it keeps is smaller.

use ember_core::{Backward, DType, Device, Generator, Tensor, checkpoint, manual_seed, usage};
use ember_nn::{AttentionConfig, Block, BlockConfig, Module, VarBuilder, VarStore};

fn blocks(store: &VarStore) -> Vec<Block> {
    let attention = AttentionConfig {
        dim: 16,
        n_heads: 4,
        n_kv_heads: 4,
        head_dim: 4,
        qkv_bias: true,
        o_bias: true,
        causal: true,
        rope: None,
    };
    let vb = VarBuilder::new(store);
    (0..3)
        .map(|i| Block::new(vb.pp(i), BlockConfig::gpt(attention.clone(), 64, 0.2)).unwrap())
        .collect()
}

/// Loss, the graph's saved bytes, and every gradient (parameters, then the input), with the
/// global generator seeded alike.
fn run(store: &VarStore, blocks: &[Block], ckpt: bool) -> (f32, u64, Vec<Vec<f32>>) {
    let x = Tensor::randn_with(&mut Generator::new(1), &[2, 8, 16], DType::F32, Device::Cpu)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    manual_seed(42);
    let mut h = x.clone();
    for b in blocks {
        h = if ckpt {
            let b = b.clone();
            checkpoint(move |x| b.forward(x), &h).unwrap()
        } else {
            b.forward(&h).unwrap()
        };
    }
    let loss = h.square().unwrap().mean(&[], false).unwrap();
    let saved = usage::saved_for_backward(&loss, &[]);
    let grads = loss.backward().unwrap();
    let mut out: Vec<Vec<f32>> = store
        .named_parameters()
        .iter()
        .map(|(n, p)| {
            grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("no gradient for {n}"))
                .to_vec::<f32>()
                .unwrap()
        })
        .collect();
    out.push(grads.get(&x).unwrap().to_vec::<f32>().unwrap());
    (loss.to_scalar::<f32>().unwrap(), saved, out)
}

#[test]
fn checkpointed_blocks_with_dropout_give_bit_identical_gradients() {
    let store = VarStore::with_seed(Device::Cpu, DType::F32, 3);
    let blocks = blocks(&store);
    store.train();
    let (loss, saved, plain) = run(&store, &blocks, false);
    let (loss_ck, saved_ck, ck) = run(&store, &blocks, true);
    assert_eq!(loss.to_bits(), loss_ck.to_bits(), "the same forward");
    assert_eq!(plain.len(), ck.len());
    for (i, (a, b)) in plain.iter().zip(&ck).enumerate() {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "gradient {i} differs with checkpointing");
    }
    eprintln!("graph kept for backward: {saved} bytes plain, {saved_ck} checkpointed");
    assert!(
        saved_ck * 3 < saved,
        "checkpointing keeps {saved_ck} of {saved} bytes"
    );
    // Dropout was on: eval mode gives another loss.
    store.eval();
    let (loss_eval, _, _) = run(&store, &blocks, false);
    assert_ne!(loss.to_bits(), loss_eval.to_bits());
}

#[test]
fn a_checkpoint_refuses_a_captured_tracked_intermediate() {
    let w = Tensor::ones(&[4], DType::F32, Device::Cpu)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    let captured = w.mul_scalar(2.0).unwrap(); // tracked, not a leaf
    let x = Tensor::ones(&[4], DType::F32, Device::Cpu).unwrap();
    let err = checkpoint(move |x| x.mul(&captured), &x).err().unwrap();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}
