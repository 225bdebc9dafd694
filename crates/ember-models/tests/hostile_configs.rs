//! Hostile `config.json` files against small real checkpoints (the fixtures transformers
//! wrote): zero, negative, huge and inconsistent sizes for each model family. Every one is an
//! `Err` within a second, nothing panics or aborts, and the process's peak resident memory
//! stays under 1 GB, because loading checks the config and the checkpoint's index before it
//! allocates anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_core::{DType, Device, Tensor};
use ember_models::{Bert, BertConfig, Gpt, Gpt2, Gpt2Config, GptConfig, Llama, LlamaConfig};
use ember_nn::VarStore;
use ember_testing::hostile::Hostile;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

/// A copy of fixture `name` in a fresh directory, its config.json replaced by `config`.
fn with_config(name: &str, case: usize, config: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ember-hostile-{name}-{case}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture(name).join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    dir
}

/// The fixture's config with `patch`'s fields set (a JSON object).
fn patched(name: &str, patch: &Value) -> String {
    let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    for (k, v) in patch.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg.to_string()
}

const HUGE: u64 = 1_000_000_000_000; // 10^12
const MAX: u64 = u64::MAX;

/// Config texts that are not configs at all.
fn broken_texts() -> Vec<(&'static str, String)> {
    vec![
        ("empty file", String::new()),
        ("truncated", "{\"vocab_size\": 64, \"hidden".into()),
        ("an array", "[1, 2, 3]".into()),
        ("null", "null".into()),
        ("nested 100000 deep", "[".repeat(100_000)),
        ("NaN literal", "{\"vocab_size\": NaN}".into()),
        (
            "not UTF-8",
            String::from_utf8_lossy(&[0xff, 0xfe, 0x7b]).into_owned(),
        ),
    ]
}

/// Runs every case of one family: `load` builds the model from a directory.
fn family<M>(
    h: &mut Hostile,
    name: &str,
    load: impl Fn(&Path) -> ember_core::Result<M>,
    errs: Vec<(&str, Value)>,
    oks: Vec<(&str, Value)>,
) {
    let mut case = 0;
    let mut next = |config: String| {
        case += 1;
        with_config(name, case, &config)
    };
    let clean = next(patched(name, &json!({})));
    h.ok(&format!("{name}: unchanged"), || load(&clean));
    for (what, patch) in errs {
        let dir = next(patched(name, &patch));
        h.err(&format!("{name}: {what}"), || load(&dir));
    }
    for (what, patch) in oks {
        let dir = next(patched(name, &patch));
        h.ok(&format!("{name}: {what}"), || load(&dir));
    }
    for (what, text) in broken_texts() {
        let dir = next(text);
        h.err(&format!("{name}: config.json {what}"), || load(&dir));
    }
    let dir = next(String::new());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    h.err(&format!("{name}: no config.json"), || load(&dir));
    std::fs::create_dir(dir.join("config.json")).unwrap();
    h.err(&format!("{name}: config.json is a directory"), || {
        load(&dir)
    });
    let dir = next(patched(name, &json!({})));
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    h.err(&format!("{name}: no weights"), || load(&dir));
}

#[test]
fn hostile_configs_are_errors_within_a_second_and_1_gb() {
    let cpu = Device::Cpu;
    let f32_ = DType::F32;
    let mut h = Hostile::new("model configs", Duration::from_secs(1), 1024.0);

    // Llama: hidden 32, 4 heads of 8, 2 KV heads, MLP 48, 2 layers, vocab 64, 64 positions.
    let sizes = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
    ];
    let mut errs: Vec<(String, Value)> = Vec::new();
    for field in sizes {
        for (label, v) in [
            ("0", json!(0)),
            ("-1", json!(-1)),
            ("10^12", json!(HUGE)),
            ("2^64-1", json!(MAX)),
            ("1.5", json!(1.5)),
            ("a string", json!("32")),
        ] {
            errs.push((format!("{field} = {label}"), json!({ field: v })));
        }
    }
    errs.extend([
        (
            "max_position_embeddings = 0".into(),
            json!({"max_position_embeddings": 0}),
        ),
        (
            "vocab larger than the embedding".into(),
            json!({"vocab_size": 65}),
        ),
        (
            "vocab smaller than the embedding".into(),
            json!({"vocab_size": 63}),
        ),
        (
            "more layers than the file".into(),
            json!({"num_hidden_layers": 3}),
        ),
        (
            "a million layers".into(),
            json!({"num_hidden_layers": 1_000_000}),
        ),
        (
            "fewer layers than the file".into(),
            json!({"num_hidden_layers": 1}),
        ),
        (
            "heads not dividing the width".into(),
            json!({"num_attention_heads": 5, "head_dim": null}),
        ),
        (
            "KV heads not dividing heads".into(),
            json!({"num_key_value_heads": 3}),
        ),
        (
            "KV heads disagree with the file".into(),
            json!({"num_key_value_heads": 4}),
        ),
        ("odd head_dim".into(), json!({"head_dim": 7})),
        (
            "head_dim disagrees with the file".into(),
            json!({"head_dim": 16}),
        ),
        (
            "hidden 10^9".into(),
            json!({"hidden_size": 1_000_000_000u64}),
        ),
        (
            "MLP 10^15".into(),
            json!({"intermediate_size": 1_000_000_000_000_000u64}),
        ),
        (
            "MLP disagrees with the file".into(),
            json!({"intermediate_size": 49}),
        ),
        ("negative eps".into(), json!({"rms_norm_eps": -1.0})),
        ("eps 1e400".into(), json!({"rms_norm_eps": "1e400"})),
        (
            "rope_theta 0".into(),
            json!({"rope_parameters": {"rope_theta": 0.0, "rope_type": "default"}}),
        ),
        (
            "rope_theta -5".into(),
            json!({"rope_parameters": {"rope_theta": -5.0}}),
        ),
        (
            "rope scaling yarn".into(),
            json!({"rope_parameters": {"rope_type": "yarn"}}),
        ),
        ("hidden_act gelu".into(), json!({"hidden_act": "gelu"})),
        ("hidden_act 5".into(), json!({"hidden_act": 5})),
        (
            "qwen2 without biases".into(),
            json!({"model_type": "qwen2"}),
        ),
        (
            "attention biases the file lacks".into(),
            json!({"attention_bias": true}),
        ),
    ]);
    let errs_ref: Vec<(&str, Value)> = errs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let oks = vec![
        // Positions cost nothing until used: the rotary tables grow with the sequence.
        (
            "max_position_embeddings 2^62",
            json!({"max_position_embeddings": 1u64 << 62}),
        ),
        (
            "tied embeddings (lm_head ignored)",
            json!({"tie_word_embeddings": true}),
        ),
        ("unknown fields", json!({"flux_capacitor": [1, 2, 3]})),
    ];
    family(
        &mut h,
        "tiny-llama",
        |d| Llama::from_pretrained(d, cpu, f32_),
        errs_ref,
        oks,
    );

    // A model whose positions are 2^62 still runs, and refuses positions past its table.
    let dir = with_config(
        "tiny-llama",
        900,
        &patched(
            "tiny-llama",
            &json!({"max_position_embeddings": 1u64 << 62}),
        ),
    );
    let m = Llama::from_pretrained(&dir, cpu, f32_).unwrap();
    let ids = Tensor::from_vec(vec![1i64, 2, 3], &[1, 3], cpu).unwrap();
    assert_eq!(m.forward(&ids).unwrap().dims(), &[1, 3, 64]);

    // The zoo's own fields: refused scaling, capping and layer lists that do not fit.
    let zoo_errs: Vec<(&str, Value)> = vec![
        (
            "yarn rope",
            json!({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}),
        ),
        (
            "longrope scaling",
            json!({"rope_scaling": {"type": "longrope", "short_factor": [1.0]}}),
        ),
        ("partial rotary 0.5", json!({"partial_rotary_factor": 0.5})),
        (
            "attention soft-capping",
            json!({"attn_logit_softcapping": 50.0}),
        ),
        (
            "layer_types too short",
            json!({"layer_types": ["full_attention"]}),
        ),
        (
            "unknown layer type",
            json!({"layer_types": ["chunked", "chunked", "chunked"]}),
        ),
        ("sliding window 0", json!({"sliding_window": 0})),
        ("soft-capping 0", json!({"final_logit_softcapping": 0.0})),
        (
            "soft-capping NaN",
            json!({"final_logit_softcapping": "NaN"}),
        ),
        (
            "query_pre_attn_scalar -1",
            json!({"query_pre_attn_scalar": -1.0}),
        ),
        ("gemma with silu", json!({"hidden_activation": "silu"})),
        (
            "linear rope factor 0.5",
            json!({"rope_parameters": {"rope_type": "linear", "factor": 0.5}}),
        ),
        ("model_type mamba", json!({"model_type": "mamba"})),
    ];
    let zoo_oks = vec![
        (
            "linear rope scaling",
            json!({"rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}, "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}),
        ),
        ("no soft-capping", json!({"final_logit_softcapping": null})),
    ];
    family(
        &mut h,
        "tiny-gemma3",
        |d| ember_models::DecoderLm::from_pretrained(d, cpu, f32_),
        zoo_errs,
        zoo_oks,
    );

    // GPT-2: width 32, 4 heads, 2 layers, vocab 50, 32 positions.
    let mut errs: Vec<(String, Value)> = Vec::new();
    for field in [
        "vocab_size",
        "n_positions",
        "n_embd",
        "n_layer",
        "n_head",
        "n_inner",
    ] {
        for (label, v) in [
            ("0", json!(0)),
            ("-1", json!(-1)),
            ("10^12", json!(HUGE)),
            ("2^64-1", json!(MAX)),
            ("1e3 as a float", json!(1e3)),
        ] {
            errs.push((format!("{field} = {label}"), json!({ field: v })));
        }
    }
    errs.extend([
        ("heads not dividing the width".into(), json!({"n_head": 5})),
        (
            "n_embd overflows 3x".into(),
            json!({"n_embd": 6_148_914_691_236_517_206u64, "n_head": 1}),
        ),
        (
            "vocab larger than the file".into(),
            json!({"vocab_size": 51}),
        ),
        (
            "positions more than the file".into(),
            json!({"n_positions": 33}),
        ),
        ("more layers than the file".into(), json!({"n_layer": 3})),
        ("a million layers".into(), json!({"n_layer": 1_000_000})),
        (
            "n_inner disagrees with the file".into(),
            json!({"n_inner": 64}),
        ),
        ("negative eps".into(), json!({"layer_norm_epsilon": -1e-5})),
        (
            "unknown activation".into(),
            json!({"activation_function": "swiglu9"}),
        ),
    ]);
    let errs_ref: Vec<(&str, Value)> = errs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let oks = vec![("n_inner given as 4 x n_embd", json!({"n_inner": 128}))];
    family(
        &mut h,
        "tiny-gpt2",
        |d| Gpt2::from_pretrained(d, cpu, f32_),
        errs_ref,
        oks,
    );

    // BERT: width 32, 4 heads, MLP 48, 2 layers, vocab 40, 16 positions, 2 token types.
    let mut errs: Vec<(String, Value)> = Vec::new();
    let fields = [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ];
    for field in fields {
        for (label, v) in [
            ("0", json!(0)),
            ("-1", json!(-1)),
            ("10^12", json!(HUGE)),
            ("2^64-1", json!(MAX)),
        ] {
            errs.push((format!("{field} = {label}"), json!({ field: v })));
        }
    }
    errs.extend([
        (
            "heads not dividing the width".into(),
            json!({"num_attention_heads": 3}),
        ),
        (
            "vocab larger than the file".into(),
            json!({"vocab_size": 41}),
        ),
        (
            "more layers than the file".into(),
            json!({"num_hidden_layers": 3}),
        ),
        (
            "a million layers".into(),
            json!({"num_hidden_layers": 1_000_000}),
        ),
        ("negative eps".into(), json!({"layer_norm_eps": -1.0})),
        ("unknown activation".into(), json!({"hidden_act": "nope"})),
    ]);
    let errs_ref: Vec<(&str, Value)> = errs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    family(
        &mut h,
        "tiny-bert",
        |d| Bert::from_pretrained(d, cpu, f32_),
        errs_ref,
        vec![],
    );

    h.finish();
}

/// Randomly initialized models from hostile configs: checked against the machine's memory
/// before anything is allocated.
#[test]
fn random_init_past_memory_is_an_error_within_a_second() {
    let (cpu, f32_) = (Device::Cpu, DType::F32);
    let mut h = Hostile::new("random init", Duration::from_secs(1), 1024.0);
    let llama = |patch: Value| -> LlamaConfig {
        serde_json::from_str(&patched("tiny-llama", &patch)).unwrap()
    };
    h.ok("llama: tiny", || Llama::new(llama(json!({})), cpu, f32_, 0));
    for (what, patch) in [
        (
            "llama: vocab and width 10^6",
            json!({"vocab_size": 1_000_000, "hidden_size": 1_000_000, "head_dim": null}),
        ),
        (
            "llama: MLP 10^12",
            json!({"intermediate_size": 1_000_000_000_000u64}),
        ),
        (
            "llama: 10^7 layers",
            json!({"num_hidden_layers": 10_000_000}),
        ),
        (
            "llama: 2^64-1 layers",
            json!({"num_hidden_layers": u64::MAX}),
        ),
        ("llama: heads 0", json!({"num_attention_heads": 0})),
        ("llama: KV heads 3", json!({"num_key_value_heads": 3})),
    ] {
        h.err(what, || Llama::new(llama(patch), cpu, f32_, 0));
    }
    let gpt2 = |patch: Value| -> Gpt2Config {
        serde_json::from_str(&patched("tiny-gpt2", &patch)).unwrap()
    };
    h.ok("gpt2: tiny", || Gpt2::new(gpt2(json!({})), cpu, f32_, 0));
    for (what, patch) in [
        (
            "gpt2: width 10^9",
            json!({"n_embd": 1_000_000_000, "n_head": 1}),
        ),
        ("gpt2: vocab 10^12", json!({"vocab_size": HUGE})),
        ("gpt2: 10^7 layers", json!({"n_layer": 10_000_000})),
        ("gpt2: 5 heads", json!({"n_head": 5})),
    ] {
        h.err(what, || Gpt2::new(gpt2(patch), cpu, f32_, 0));
    }
    let bert = |patch: Value| -> BertConfig {
        serde_json::from_str(&patched("tiny-bert", &patch)).unwrap()
    };
    h.ok("bert: tiny", || Bert::new(bert(json!({})), cpu, f32_, 0));
    h.err("bert: positions 10^12", || {
        Bert::new(bert(json!({"max_position_embeddings": HUGE})), cpu, f32_, 0)
    });
    h.err("bert: 3 heads", || {
        Bert::new(bert(json!({"num_attention_heads": 3})), cpu, f32_, 0)
    });
    let gpt = |vocab, block, n_layer, n_head, n_embd| GptConfig {
        vocab_size: vocab,
        block_size: block,
        n_layer,
        n_head,
        n_embd,
        bias: false,
    };
    let store = VarStore::new(cpu, f32_);
    h.ok("nanogpt: tiny", || {
        Gpt::checked(&store, gpt(65, 16, 2, 2, 32))
    });
    h.err("nanogpt: width 10^9", || {
        Gpt::checked(&VarStore::new(cpu, f32_), gpt(65, 16, 2, 1, 1_000_000_000))
    });
    h.err("nanogpt: n_head 0", || {
        Gpt::checked(&VarStore::new(cpu, f32_), gpt(65, 16, 2, 0, 32))
    });
    h.err("nanogpt: block 0", || {
        Gpt::checked(&VarStore::new(cpu, f32_), gpt(65, 0, 2, 2, 32))
    });
    h.err("nanogpt: 4 x width overflows", || {
        Gpt::checked(&VarStore::new(cpu, f32_), gpt(65, 16, 2, 1, usize::MAX / 2))
    });
    h.finish();
}

#[test]
fn loading_with_the_wrong_class_names_the_model_type() {
    let (cpu, f32) = (Device::Cpu, DType::F32);
    let err = |r: ember_core::Result<()>| r.expect_err("the wrong class must fail").to_string();
    let e = err(Llama::from_pretrained(fixture("tiny-bert"), cpu, f32).map(drop));
    let want = "model_type is \"bert\", and DecoderLm::from_pretrained loads llama, mistral, \
                qwen2, qwen3, gemma3_text, phi3";
    assert!(e.contains(want), "{e}");
    assert!(e.lines().count() <= 2, "one short error, got:\n{e}");
    let e = err(Gpt2::from_pretrained(fixture("tiny-llama"), cpu, f32).map(drop));
    assert!(e.contains("model_type is \"llama\""), "{e}");
    let e = err(Bert::from_pretrained(fixture("tiny-gpt2"), cpu, f32).map(drop));
    assert!(e.contains("model_type is \"gpt2\""), "{e}");
}

#[test]
fn bert_inputs_are_checked_against_the_model() {
    let model = Bert::from_pretrained(fixture("tiny-bert"), Device::Cpu, DType::F32).unwrap();
    let limit = model.cfg.max_position_embeddings;
    let ids = |t: usize| Tensor::zeros(&[1, t], DType::I64, Device::Cpu).unwrap();
    let e = model
        .embed(&ids(limit + 1), &ids(limit + 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("more than the model's {limit} positions")),
        "{e}"
    );
    let e = model.embed(&ids(4), &ids(5)).unwrap_err().to_string();
    assert!(
        e.contains("attention_mask must be (B, T) = [1, 4] like the ids, got [1, 5]"),
        "{e}"
    );
    let e = model
        .forward(&ids(4), None, Some(&ids(3)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("token_type_ids must be (B, T)"), "{e}");
}
