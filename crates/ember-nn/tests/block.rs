//! The configurable `Block`: its Llama configuration is Llama's block built from its parts
//! (RMSNorm, attention, SwiGLU MLP, with Llama's names); dropout follows train/eval; the
//! composed attention used for probability dropout equals the fused one.

use ember_core::{Backward, DType, Device, Generator, Tensor};
use ember_nn::{
    Activation, AttentionConfig, Block, BlockConfig, GatedMlp, Module, MultiHeadAttention, RmsNorm,
    VarBuilder, VarStore,
};

fn attention(causal: bool, n_kv_heads: usize, rope: bool) -> AttentionConfig {
    AttentionConfig {
        dim: 16,
        n_heads: 4,
        n_kv_heads,
        head_dim: 4,
        qkv_bias: !rope,
        o_bias: !rope,
        causal,
        rope: rope.then_some((10000.0, 32)),
    }
}

fn input(seed: u64) -> Tensor {
    Tensor::randn_with(
        &mut Generator::new(seed),
        &[2, 6, 16],
        DType::F32,
        Device::Cpu,
    )
    .unwrap()
}

/// Llama's decoder layer written out from its parts: `x + self_attn(input_layernorm(x))`,
/// then `+ mlp(post_attention_layernorm(h))` with a SwiGLU MLP.
struct LlamaLayer {
    input_layernorm: RmsNorm,
    self_attn: MultiHeadAttention,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
}

impl LlamaLayer {
    fn new(
        vb: VarBuilder,
        cfg: AttentionConfig,
        hidden: usize,
        eps: f64,
    ) -> ember_core::Result<Self> {
        let dim = cfg.dim;
        Ok(LlamaLayer {
            input_layernorm: RmsNorm::new(vb.pp("input_layernorm"), dim, eps)?,
            self_attn: MultiHeadAttention::new(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::new(vb.pp("post_attention_layernorm"), dim, eps)?,
            mlp: GatedMlp::new(vb.pp("mlp"), dim, hidden, Activation::Silu, false)?,
        })
    }

    fn forward(&self, x: &Tensor) -> ember_core::Result<Tensor> {
        let h = x.add(&self.self_attn.forward(&self.input_layernorm.forward(x)?)?)?;
        h.add(
            &self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?,
        )
    }
}

#[test]
fn llama_config_is_llamas_block() {
    let a = VarStore::with_seed(Device::Cpu, DType::F32, 5);
    let block = Block::new(
        VarBuilder::new(&a),
        BlockConfig::llama(attention(true, 2, true), 24, 1e-6),
    )
    .unwrap();
    let b = VarStore::with_seed(Device::Cpu, DType::F32, 9);
    let reference =
        LlamaLayer::new(VarBuilder::new(&b), attention(true, 2, true), 24, 1e-6).unwrap();
    assert_eq!(a.names(), b.names(), "the block does not use Llama's names");
    for (name, p) in a.named_parameters() {
        b.get(&name).unwrap().set(&p.tensor()).unwrap();
    }
    let x = input(1);
    let ours = block.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let theirs = reference.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn dropout_follows_train_and_eval() {
    let store = VarStore::with_seed(Device::Cpu, DType::F32, 3);
    let cfg = BlockConfig::gpt(attention(true, 4, false), 32, 0.5);
    let block = Block::new(VarBuilder::new(&store), cfg.clone()).unwrap();
    let plain_store = VarStore::with_seed(Device::Cpu, DType::F32, 4);
    let plain = Block::new(
        VarBuilder::new(&plain_store),
        BlockConfig {
            attn_dropout: 0.0,
            resid_dropout: 0.0,
            ..cfg
        },
    )
    .unwrap();
    for (name, p) in store.named_parameters() {
        plain_store.get(&name).unwrap().set(&p.tensor()).unwrap();
    }
    let x = input(2).requires_grad(true).unwrap();
    let reference = plain.forward(&x).unwrap().to_vec::<f32>().unwrap();
    store.eval();
    assert_eq!(
        block.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        reference
    );
    store.train();
    let dropped = block.forward(&x).unwrap();
    assert_ne!(
        dropped.to_vec::<f32>().unwrap(),
        reference,
        "training mode dropped nothing"
    );
    let grads = dropped.sum(&[], false).unwrap().backward().unwrap();
    assert!(
        grads.get(&x).is_some(),
        "no gradient through the dropped block"
    );
}

#[test]
fn composed_attention_equals_the_fused_one() {
    // Probability dropout of 1e-9 keeps every element (scaled by 1/(1 - 1e-9)).
    for (causal, kv, pre) in [(true, 2, true), (false, 4, false), (true, 1, false)] {
        let store = VarStore::with_seed(Device::Cpu, DType::F32, 11);
        let mut cfg = BlockConfig::gpt(attention(causal, kv, false), 32, 0.0);
        cfg.pre_norm = pre;
        let fused = Block::new(VarBuilder::new(&store), cfg.clone()).unwrap();
        let other = VarStore::with_seed(Device::Cpu, DType::F32, 12);
        cfg.attn_dropout = 1e-9;
        let composed = Block::new(VarBuilder::new(&other), cfg).unwrap();
        for (name, p) in store.named_parameters() {
            other.get(&name).unwrap().set(&p.tensor()).unwrap();
        }
        let x = input(7);
        let mask = Tensor::from_vec(
            (0..12).map(|i| i % 6 != 1).collect::<Vec<bool>>(),
            &[2, 1, 1, 6],
            Device::Cpu,
        )
        .unwrap();
        let a = fused.forward_with(&x, Some(&mask), None).unwrap();
        let b = composed.forward_with(&x, Some(&mask), None).unwrap();
        let diff = a.sub(&b).unwrap().abs().unwrap().max(&[], false).unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(
            diff < 1e-5,
            "causal {causal}, kv heads {kv}: differs by {diff}"
        );
    }
}
