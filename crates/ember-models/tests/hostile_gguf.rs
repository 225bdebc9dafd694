//! Hostile GGUF llama files: a small real model (tiny-llama's weights, written as llama.cpp
//! lays them out) whose metadata and tensors are bent one way at a time. Every bent file is an
//! `Err` within a second; nothing panics; the peak resident memory stays under 1 GB. The
//! unbent file loads and computes the same logits as the safetensors checkpoint.

use std::path::PathBuf;
use std::time::Duration;

use ember_core::{DType, Device, Tensor};
use ember_models::Llama;
use ember_testing::gguf::{Meta, write};
use ember_testing::hostile::Hostile;
use ember_weights::{Checkpoint, GgufFile};

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;
type Metadata = Vec<(String, Meta)>;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny-llama")
}

/// llama.cpp's rotary row order for a Q or K weight `[out, in]` of `heads` heads.
fn permute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = (w.dims()[0], w.dims()[1]);
    w.reshape_to(&[heads, 2, out / heads / 2, inp])
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape_to(&[out, inp])
        .unwrap()
}

/// tiny-llama (hidden 32, 4 heads, 2 KV heads, MLP 48, 2 layers, vocab 64) as GGUF.
fn tiny_llama() -> (Metadata, Tensors) {
    let ckpt = Checkpoint::open(fixture().join("model.safetensors")).unwrap();
    let get = |n: &str| ckpt.load(n, Device::Cpu, Some(DType::F32)).unwrap();
    let mut tensors = Vec::new();
    let mut put = |name: String, t: Tensor| {
        tensors.push((name, t.dims().to_vec(), t.to_vec::<f32>().unwrap()));
    };
    put("token_embd.weight".into(), get("model.embed_tokens.weight"));
    put("output_norm.weight".into(), get("model.norm.weight"));
    put("output.weight".into(), get("lm_head.weight"));
    for i in 0..2 {
        let hf = |p: &str| get(&format!("model.layers.{i}.{p}"));
        let blk = |p: &str| format!("blk.{i}.{p}");
        put(blk("attn_norm.weight"), hf("input_layernorm.weight"));
        put(
            blk("ffn_norm.weight"),
            hf("post_attention_layernorm.weight"),
        );
        put(
            blk("attn_q.weight"),
            permute(&hf("self_attn.q_proj.weight"), 4),
        );
        put(
            blk("attn_k.weight"),
            permute(&hf("self_attn.k_proj.weight"), 2),
        );
        put(blk("attn_v.weight"), hf("self_attn.v_proj.weight"));
        put(blk("attn_output.weight"), hf("self_attn.o_proj.weight"));
        put(blk("ffn_gate.weight"), hf("mlp.gate_proj.weight"));
        put(blk("ffn_up.weight"), hf("mlp.up_proj.weight"));
        put(blk("ffn_down.weight"), hf("mlp.down_proj.weight"));
    }
    let s = |k: &str| k.to_string();
    let meta = vec![
        (s("general.architecture"), Meta::Str("llama".into())),
        (s("llama.block_count"), Meta::U32(2)),
        (s("llama.embedding_length"), Meta::U32(32)),
        (s("llama.feed_forward_length"), Meta::U32(48)),
        (s("llama.attention.head_count"), Meta::U32(4)),
        (s("llama.attention.head_count_kv"), Meta::U32(2)),
        (s("llama.context_length"), Meta::U32(64)),
        (s("llama.attention.layer_norm_rms_epsilon"), Meta::F32(1e-6)),
        (s("llama.rope.freq_base"), Meta::F32(10000.0)),
        (
            s("tokenizer.ggml.tokens"),
            Meta::Strings((0..64).map(|i| format!("t{i}")).collect()),
        ),
    ];
    (meta, tensors)
}

fn set(meta: &mut Metadata, key: &str, v: Option<Meta>) {
    meta.retain(|(k, _)| k != key);
    if let Some(v) = v {
        meta.push((key.to_string(), v));
    }
}

#[test]
fn hostile_gguf_files_are_errors_within_a_second_and_1_gb() {
    let dir = std::env::temp_dir().join(format!("ember-hostile-gguf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut case = 0;
    let mut file = |meta: &Metadata, tensors: &Tensors| {
        case += 1;
        let path = dir.join(format!("case-{case}.gguf"));
        write(&path, meta, tensors).unwrap();
        path
    };
    let load = |p: &PathBuf| Llama::from_gguf(&GgufFile::open(p)?, Device::Cpu, DType::F32);
    let (meta, tensors) = tiny_llama();
    let mut h = Hostile::new("GGUF llama", Duration::from_secs(1), 1024.0);

    // The unbent file is the safetensors model.
    let clean = file(&meta, &tensors);
    h.ok("unchanged", || load(&clean));
    let ids = Tensor::from_vec(vec![1i64, 5, 9, 2], &[1, 4], Device::Cpu).unwrap();
    let from_gguf = load(&clean).unwrap().forward(&ids).unwrap();
    let from_st = Llama::from_pretrained(fixture(), Device::Cpu, DType::F32)
        .unwrap()
        .forward(&ids)
        .unwrap();
    let diff = from_gguf
        .sub(&from_st)
        .unwrap()
        .abs()
        .unwrap()
        .max(&[], false)
        .unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);

    let big = u64::MAX;
    let metadata_cases: Vec<(&str, &str, Option<Meta>)> = vec![
        ("no architecture", "general.architecture", None),
        (
            "architecture gpt2",
            "general.architecture",
            Some(Meta::Str("gpt2".into())),
        ),
        ("0 blocks", "llama.block_count", Some(Meta::U32(0))),
        ("3 blocks", "llama.block_count", Some(Meta::U32(3))),
        (
            "a million blocks",
            "llama.block_count",
            Some(Meta::U32(1_000_000)),
        ),
        ("2^64-1 blocks", "llama.block_count", Some(Meta::U64(big))),
        ("-1 blocks", "llama.block_count", Some(Meta::I32(-1))),
        (
            "blocks as a float",
            "llama.block_count",
            Some(Meta::F32(2.0)),
        ),
        (
            "blocks as a string",
            "llama.block_count",
            Some(Meta::Str("2".into())),
        ),
        ("no block count", "llama.block_count", None),
        ("width 0", "llama.embedding_length", Some(Meta::U32(0))),
        ("width 33", "llama.embedding_length", Some(Meta::U32(33))),
        (
            "width 2^64-1",
            "llama.embedding_length",
            Some(Meta::U64(big)),
        ),
        (
            "width 10^12",
            "llama.embedding_length",
            Some(Meta::U64(1_000_000_000_000)),
        ),
        ("no width", "llama.embedding_length", None),
        ("MLP 0", "llama.feed_forward_length", Some(Meta::U32(0))),
        ("MLP 49", "llama.feed_forward_length", Some(Meta::U32(49))),
        (
            "MLP 2^64-1",
            "llama.feed_forward_length",
            Some(Meta::U64(big)),
        ),
        ("0 heads", "llama.attention.head_count", Some(Meta::U32(0))),
        ("3 heads", "llama.attention.head_count", Some(Meta::U32(3))),
        (
            "8 heads (file has 4)",
            "llama.attention.head_count",
            Some(Meta::U32(8)),
        ),
        (
            "2^64-1 heads",
            "llama.attention.head_count",
            Some(Meta::U64(big)),
        ),
        ("no heads", "llama.attention.head_count", None),
        (
            "0 KV heads",
            "llama.attention.head_count_kv",
            Some(Meta::U32(0)),
        ),
        (
            "3 KV heads",
            "llama.attention.head_count_kv",
            Some(Meta::U32(3)),
        ),
        (
            "4 KV heads (file has 2)",
            "llama.attention.head_count_kv",
            Some(Meta::U32(4)),
        ),
        ("context 0", "llama.context_length", Some(Meta::U32(0))),
        ("no context", "llama.context_length", None),
        (
            "eps NaN",
            "llama.attention.layer_norm_rms_epsilon",
            Some(Meta::F32(f32::NAN)),
        ),
        (
            "eps -1",
            "llama.attention.layer_norm_rms_epsilon",
            Some(Meta::F32(-1.0)),
        ),
        (
            "eps inf",
            "llama.attention.layer_norm_rms_epsilon",
            Some(Meta::F32(f32::INFINITY)),
        ),
        (
            "rope base NaN",
            "llama.rope.freq_base",
            Some(Meta::F32(f32::NAN)),
        ),
        ("rope base 0", "llama.rope.freq_base", Some(Meta::F32(0.0))),
        (
            "rope base -inf",
            "llama.rope.freq_base",
            Some(Meta::F32(f32::NEG_INFINITY)),
        ),
        (
            "65 tokens for 64 embeddings",
            "tokenizer.ggml.tokens",
            Some(Meta::Strings((0..65).map(|i| format!("t{i}")).collect())),
        ),
        ("no tokens and no vocab size", "tokenizer.ggml.tokens", None),
    ];
    for (what, key, value) in metadata_cases {
        let mut m = meta.clone();
        set(&mut m, key, value);
        let p = file(&m, &tensors);
        h.err(what, || load(&p));
    }
    let mut m = meta.clone();
    set(&mut m, "tokenizer.ggml.tokens", None);
    set(&mut m, "llama.vocab_size", Some(Meta::U32(64)));
    let p = file(&m, &tensors);
    h.ok("vocab size without tokens", || load(&p));
    let mut m = meta.clone();
    set(&mut m, "llama.context_length", Some(Meta::U64(1 << 62)));
    let p = file(&m, &tensors);
    h.ok("context 2^62 (rotary tables grow with use)", || load(&p));

    type Bend = Box<dyn Fn(&mut Tensors)>;
    let tensor_cases: Vec<(&str, Bend)> = vec![
        (
            "an unknown tensor",
            Box::new(|t| t.push(("foo".into(), vec![1], vec![0.0]))),
        ),
        (
            "a bias llama has no place for",
            Box::new(|t| t.push(("blk.0.attn_q.bias".into(), vec![32], vec![0.0; 32]))),
        ),
        (
            "a tensor of a third block",
            Box::new(|t| t.push(("blk.2.attn_norm.weight".into(), vec![32], vec![1.0; 32]))),
        ),
        (
            "a block index past u64",
            Box::new(|t| {
                let name = "blk.99999999999999999999999.attn_norm.weight".into();
                t.push((name, vec![32], vec![1.0; 32]))
            }),
        ),
        (
            "a missing tensor",
            Box::new(|t| t.retain(|x| x.0 != "blk.1.ffn_up.weight")),
        ),
        (
            "a tensor of the wrong shape",
            Box::new(|t| {
                let x = t.iter_mut().find(|x| x.0 == "blk.1.ffn_up.weight").unwrap();
                x.1 = vec![49, 32];
                x.2 = vec![0.0; 49 * 32];
            }),
        ),
        (
            "a transposed embedding",
            Box::new(|t| {
                t.iter_mut().find(|x| x.0 == "token_embd.weight").unwrap().1 = vec![32, 64]
            }),
        ),
        (
            "an embedding of rank 3",
            Box::new(|t| {
                t.iter_mut().find(|x| x.0 == "token_embd.weight").unwrap().1 = vec![2, 32, 32]
            }),
        ),
    ];
    for (what, bend) in tensor_cases {
        let mut t = tensors.clone();
        bend(&mut t);
        let p = file(&meta, &t);
        h.err(what, || load(&p));
    }
    let mut t = tensors.clone();
    t.retain(|x| x.0 != "output.weight");
    let p = file(&meta, &t);
    h.ok("no output.weight (tied embeddings)", || load(&p));

    h.finish();
    let _ = std::fs::remove_dir_all(&dir);
}
