//! The parameter store, loading rules, freezing, train/eval, save/load round trips and the
//! KV cache.

use ember_core::Backward;
use ember_core::{DType, Device, Generator, Tensor};
use ember_nn::{
    AttentionConfig, Block, BlockConfig, Dropout, Init, KvCache, Linear, LoadOptions, Module,
    VarBuilder, VarStore,
};
use ember_weights::Checkpoint;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ember-nn-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn cfg() -> AttentionConfig {
    AttentionConfig {
        dim: 16,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 4,
        qkv_bias: false,
        o_bias: false,
        causal: true,
        rope: Some((10000.0, 32)),
    }
}

fn block(store: &VarStore) -> Block {
    let vb = VarBuilder::new(store).pp("model.layers.0");
    Block::new(vb, BlockConfig::llama(cfg(), 24, 1e-6)).unwrap()
}

fn input(t: usize) -> Tensor {
    Tensor::randn_with(&mut Generator::new(9), &[2, t, 16], DType::F32, Device::Cpu).unwrap()
}

#[test]
fn names_counts_and_init() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let _b = block(&store);
    let names = store.names();
    assert!(names.contains(&"model.layers.0.self_attn.q_proj.weight".to_string()));
    assert!(names.contains(&"model.layers.0.mlp.gate_proj.weight".to_string()));
    assert!(names.contains(&"model.layers.0.input_layernorm.weight".to_string()));
    // q 16·16, k and v 8·16 each, o 16·16, mlp 3·16·24, two norms of 16.
    assert_eq!(store.num_parameters(), 256 + 128 + 128 + 256 + 3 * 384 + 32);
    let vb = VarBuilder::new(&store);
    let w = vb
        .get("x", &[100, 50], Init::XavierUniform)
        .unwrap()
        .tensor();
    let bound = (6.0f32 / 150.0).sqrt();
    assert!(w.to_vec::<f32>().unwrap().iter().all(|v| v.abs() <= bound));
    assert!(
        vb.get("x", &[3], Init::Zeros).is_err(),
        "same name, other shape"
    );
}

#[test]
fn save_then_load_into_a_fresh_model_gives_identical_outputs() {
    let a = VarStore::with_seed(Device::Cpu, DType::F32, 1);
    let ba = block(&a);
    let path = tmp("block.safetensors");
    a.save(&path, None).unwrap();
    let b = VarStore::with_seed(Device::Cpu, DType::F32, 2);
    let bb = block(&b);
    let x = input(5);
    assert_ne!(
        ba.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        bb.forward(&x).unwrap().to_vec::<f32>().unwrap()
    );
    let report = b
        .load(&Checkpoint::open(&path).unwrap(), &LoadOptions::default())
        .unwrap();
    assert!(report.is_clean());
    assert_eq!(
        ba.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        bb.forward(&x).unwrap().to_vec::<f32>().unwrap()
    );
}

#[test]
fn strict_loading_lists_every_problem_and_changes_nothing() {
    let src = VarStore::new(Device::Cpu, DType::F32);
    let vb = VarBuilder::new(&src);
    vb.get("a.weight", &[2, 3], Init::Ones).unwrap();
    vb.get("b.weight", &[4], Init::Ones).unwrap();
    vb.get("extra.buffer", &[1], Init::Ones).unwrap();
    let path = tmp("strict.safetensors");
    src.save(&path, None).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();

    let dst = VarStore::new(Device::Cpu, DType::F32);
    let vb = VarBuilder::new(&dst);
    let a = vb.get("a.weight", &[2, 3], Init::Zeros).unwrap();
    vb.get("b.weight", &[5], Init::Zeros).unwrap();
    vb.get("c.weight", &[1], Init::Zeros).unwrap();
    let e = dst
        .load(&ckpt, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing: c.weight"), "{e}");
    assert!(e.contains("unexpected: extra.buffer"), "{e}");
    assert!(
        e.contains("shape mismatch: b.weight: checkpoint [4], model [5]"),
        "{e}"
    );
    assert_eq!(
        a.tensor().to_vec::<f32>().unwrap(),
        vec![0.0; 6],
        "strict failure loads nothing"
    );

    let lenient = LoadOptions {
        strict: false,
        ignore: vec!["extra.*".into()],
        ..Default::default()
    };
    let report = dst.load(&ckpt, &lenient).unwrap();
    assert_eq!(report.missing, vec!["c.weight"]);
    assert!(report.unexpected.is_empty());
    assert_eq!(report.mismatched.len(), 1);
    assert_eq!(report.loaded, 1);
    assert_eq!(a.tensor().to_vec::<f32>().unwrap(), vec![1.0; 6]);
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let lin = Linear::new(VarBuilder::new(&store).pp("proj"), 3, 2, true).unwrap();
    assert_eq!(store.freeze("*.bias").unwrap(), 1);
    assert_eq!(store.trainable_parameters().len(), 1);
    let x = Tensor::ones(&[4, 3], DType::F32, Device::Cpu).unwrap();
    let g = lin
        .forward(&x)
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&lin.weight.tensor()).is_some());
    assert!(g.get(&lin.bias.as_ref().unwrap().tensor()).is_none());
    store.unfreeze("*").unwrap();
    let g = lin
        .forward(&x)
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&lin.bias.as_ref().unwrap().tensor()).is_some());
}

#[test]
fn dropout_follows_train_and_eval() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let drop = Dropout::new(VarBuilder::new(&store), 0.5).unwrap();
    let x = Tensor::ones(&[1000], DType::F32, Device::Cpu).unwrap();
    let y = drop.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let kept = y.iter().filter(|&&v| v == 2.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    assert!((400..600).contains(&kept), "{kept} kept");
    store.eval();
    assert_eq!(
        drop.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 1000]
    );
}

#[test]
fn a_name_used_twice_is_an_error_unless_shared_on_purpose() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let vb = VarBuilder::new(&store).pp("block");
    Linear::new(vb.pp("proj"), 3, 4, false).unwrap();
    let e = Linear::new(vb.pp("proj"), 3, 4, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("block.proj.weight already exists"), "{e}");
    let a = vb.get_shared("tied", &[2, 2], Init::Zeros).unwrap();
    let b = vb.get_shared("tied", &[2, 2], Init::Ones).unwrap();
    assert_eq!(a.tensor().id(), b.tensor().id(), "one parameter");
    assert!(
        vb.get_shared("tied", &[3], Init::Zeros).is_err(),
        "a shared name keeps its shape"
    );
}

#[test]
fn a_wrong_input_width_names_the_layer() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let lin = Linear::new(VarBuilder::new(&store).pp("encoder").pp("proj"), 3, 4, true).unwrap();
    let x = Tensor::ones(&[2, 5], DType::F32, Device::Cpu).unwrap();
    let e = lin.forward(&x).unwrap_err().to_string();
    assert!(
        e.contains(
            "encoder.proj: input [2, 5] does not end in the layer's 3 inputs (weight [4, 3])"
        ),
        "{e}"
    );
}

#[test]
fn standalone_dropout_needs_no_store() {
    let drop = Dropout::standalone(0.25).unwrap();
    let x = Tensor::ones(&[1000], DType::F32, Device::Cpu).unwrap();
    let y = drop.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let dropped = y.iter().filter(|&&v| v == 0.0).count();
    assert!((150..350).contains(&dropped), "{dropped} dropped");
    drop.eval();
    assert_eq!(
        drop.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 1000]
    );
    drop.train();
    assert!(
        drop.forward(&x)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
            .contains(&0.0)
    );
    assert!(
        Dropout::standalone(1.0)
            .unwrap_err()
            .to_string()
            .contains("outside [0, 1)")
    );
}

#[test]
fn kv_cache_decoding_equals_the_full_forward() {
    let store = VarStore::new(Device::Cpu, DType::F32);
    let b = block(&store);
    let x = input(6);
    let full = b.forward(&x).unwrap(); // (2, 6, 16)
    let mut cache = KvCache::new();
    // A prefill of 3 positions, then one at a time.
    let mut parts = vec![
        b.forward_with(&x.narrow(1, 0, 3).unwrap(), None, Some(&mut cache))
            .unwrap(),
    ];
    for t in 3..6 {
        parts.push(
            b.forward_with(&x.narrow(1, t, 1).unwrap(), None, Some(&mut cache))
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), 6);
    let inc = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1).unwrap();
    let (a, c) = (full.to_vec::<f32>().unwrap(), inc.to_vec::<f32>().unwrap());
    let worst = a
        .iter()
        .zip(&c)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "cached decoding differs by {worst}");
    // A prefill after a cached prefix (two new positions at once) also matches.
    let mut cache = KvCache::new();
    b.forward_with(&x.narrow(1, 0, 4).unwrap(), None, Some(&mut cache))
        .unwrap();
    let two = b
        .forward_with(&x.narrow(1, 4, 2).unwrap(), None, Some(&mut cache))
        .unwrap();
    let want = full.narrow(1, 4, 2).unwrap().to_vec::<f32>().unwrap();
    let worst = two
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(&want)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "chunked prefill differs by {worst}");
}

/// Worst absolute difference of two tensors' values.
fn worst_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

#[test]
fn kv_cache_grows_in_place_and_clones_diverge_safely() {
    let _guard = ember_core::no_grad(); // decoding: the in-place path applies
    let store = VarStore::new(Device::Cpu, DType::F32);
    let b = block(&store);
    let x = input(30);
    let full = b.forward(&x).unwrap(); // (2, 30, 16)
    // A branch that shares the first 13 positions and then continues on other input.
    let other = input(30).mul_scalar(-1.0).unwrap();
    let branch = Tensor::cat(
        &[
            &x.narrow(1, 0, 13).unwrap(),
            &other.narrow(1, 13, 17).unwrap(),
        ],
        1,
    )
    .unwrap(); // (2, 30, 16)
    let branch_full = b.forward(&branch).unwrap();
    let step = |cache: &mut KvCache, seq: &Tensor, want: &Tensor, t: usize| {
        let y = b
            .forward_with(&seq.narrow(1, t, 1).unwrap(), None, Some(cache))
            .unwrap();
        let d = worst_diff(&y, &want.narrow(1, t, 1).unwrap());
        assert!(d < 1e-5, "position {t} differs by {d}");
    };
    // One position at a time, crossing the buffer's growth (room for 17, then 36); the clone
    // taken at 13 positions shares the buffers, and the two caches then append in turn.
    let mut cache = KvCache::new();
    for t in 0..13 {
        step(&mut cache, &x, &full, t);
    }
    let mut fork = cache.clone();
    for t in 13..30 {
        step(&mut cache, &x, &full, t);
        step(&mut fork, &branch, &branch_full, t);
    }
    assert_eq!((cache.len(), fork.len()), (30, 30));
}
