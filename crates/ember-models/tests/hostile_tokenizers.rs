//! Tokenizer files come from strangers too: hostile `tokenizer.json` files (too large, not
//! JSON, nested deep, broken vocabularies and merges, bad or backtracking regexes, absurd
//! added tokens) and hostile tokenizer metadata in GGUF files are errors within a second, in
//! a process that stays under 1 GB, and never panic or abort.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_models::{ChatTemplate, Tokenizer};
use ember_testing::gguf::{Meta, write};
use ember_testing::hostile::Hostile;
use ember_weights::GgufFile;
use serde_json::{Value, json};

/// A small byte-free BPE tokenizer in `tokenizer.json`'s format, with `pre` as its
/// pre-tokenizer.
fn tokenizer_json(vocab: Value, merges: Value, pre: Value, added: Value) -> Value {
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "vocab": vocab, "merges": merges}
    })
}

fn vocab() -> Value {
    json!({"a": 0, "b": 1, "ab": 2, " ": 3})
}

fn split(pattern: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false})
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ember-hostile-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `path` and encodes a short text and a long run of one letter.
fn load_and_encode(path: &Path) -> ember_core::Result<Vec<i64>> {
    let t = Tokenizer::from_file(path)?;
    t.encode("ab ab", false)?;
    t.encode(&format!("{}c", "a".repeat(20_000)), false)
}

#[test]
fn hostile_tokenizer_files_are_errors_within_a_second_and_1_gb() {
    let dir = Dir::new("tokenizer-json");
    let mut h = Hostile::new("tokenizer.json", Duration::from_secs(1), 1024.0);
    let good = tokenizer_json(vocab(), json!(["a b"]), Value::Null, json!([]));
    let p = dir.file("good.json", good.to_string().as_bytes());
    h.ok("the unbent file", || load_and_encode(&p));

    // A file far larger than any real tokenizer (a sparse file: nothing is written).
    let huge = dir.0.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    h.err("300 MB", || Tokenizer::from_file(&huge));
    let cases: Vec<(&str, Vec<u8>)> =
        vec![
        ("not JSON", b"\x00\xff not json".to_vec()),
        ("empty", Vec::new()),
        (
            "nested 100 000 deep",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "a merge of unknown tokens",
            tokenizer_json(vocab(), json!(["x y"]), Value::Null, json!([]))
                .to_string()
                .into_bytes(),
        ),
        (
            "a merge without a space",
            tokenizer_json(vocab(), json!(["ab"]), Value::Null, json!([]))
                .to_string()
                .into_bytes(),
        ),
        (
            "a vocabulary id of 2^40",
            tokenizer_json(json!({"a": 1u64 << 40}), json!([]), Value::Null, json!([]))
                .to_string()
                .into_bytes(),
        ),
        (
            "a negative vocabulary id",
            tokenizer_json(json!({"a": -1}), json!([]), Value::Null, json!([]))
                .to_string()
                .into_bytes(),
        ),
        (
            "an invalid regex",
            tokenizer_json(vocab(), json!(["a b"]), split("(unclosed"), json!([]))
                .to_string()
                .into_bytes(),
        ),
        (
            "a regex that compiles into gigabytes",
            tokenizer_json(
                vocab(),
                json!(["a b"]),
                split("(((a{100}){100}){100}){100}"),
                json!([]),
            )
            .to_string()
            .into_bytes(),
        ),
        (
            "an added token with id 2^40",
            tokenizer_json(
                vocab(),
                json!(["a b"]),
                Value::Null,
                json!([{"id": 1u64 << 40, "content": "<x>", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}]),
            )
            .to_string()
            .into_bytes(),
        ),
        (
            // tokenizers 0.22 `expect`s inside its decoder deserializer: a panic, caught by
            // Ember (found by the `tokenizer_json` fuzz target).
            "a syntax error inside the decoder",
            good.to_string()
                .replace("\"decoder\":null", "\"decoder\":{\"type\":\"WordPiece\",\"cleanup\":t}")
                .into_bytes(),
        ),
        (
            "an unknown model type",
            json!({"model": {"type": "Nonsense"}})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.file(&format!("{}.json", name.replace(' ', "_")), &bytes);
        h.err(name, || load_and_encode(&p));
    }
    // Backtracking regexes: fancy-regex stops each match attempt after a million steps, so
    // they cost time in proportion to the text (0.3 s for 20 000 characters, debug build) and
    // give up matching: odd but harmless.
    for (name, pattern) in [
        ("an exponentially backtracking regex", "(?=(a*)*b)"),
        ("a backtracking regex with a lookahead", "(a|aa)+(?=b)"),
        ("a backreference regex", "(a*)*\\1b"),
    ] {
        let t = tokenizer_json(vocab(), json!(["a b"]), split(pattern), json!([]));
        let p = dir.file(
            &format!("{}.json", name.replace(' ', "_")),
            t.to_string().as_bytes(),
        );
        h.ok(name, || load_and_encode(&p));
    }
    // A tokenizer_config.json far larger than any real one.
    let big_cfg = dir.0.join("tokenizer_config.json");
    std::fs::File::create(&big_cfg)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    h.err("a 300 MB tokenizer_config.json", || {
        ChatTemplate::from_tokenizer_config(&big_cfg)
    });
    h.finish();
}

#[test]
fn hostile_gguf_tokenizer_metadata_is_an_error_within_a_second() {
    let dir = Dir::new("tokenizer-gguf");
    let mut h = Hostile::new("GGUF tokenizer metadata", Duration::from_secs(1), 1024.0);
    let s = |k: &str| k.to_string();
    let base = vec![
        (s("general.architecture"), Meta::Str("llama".into())),
        (s("tokenizer.ggml.model"), Meta::Str("gpt2".into())),
        (
            s("tokenizer.ggml.tokens"),
            Meta::Strings(vec!["a".into(), "b".into(), "ab".into()]),
        ),
        (
            s("tokenizer.ggml.merges"),
            Meta::Strings(vec!["a b".into()]),
        ),
    ];
    let load = |meta: &[(String, Meta)], name: &str| {
        let p = dir.0.join(format!("{name}.gguf"));
        write(&p, meta, &[]).unwrap();
        move || -> ember_core::Result<Vec<i64>> {
            let t = Tokenizer::from_gguf(&GgufFile::open(&p)?)?;
            t.encode("abab", false)
        }
    };
    let with = |key: &str, v: Option<Meta>| {
        let mut m = base.clone();
        m.retain(|(k, _)| k != key);
        if let Some(v) = v {
            m.push((key.to_string(), v));
        }
        m
    };
    h.ok("the unbent file", load(&base, "good"));
    let cases: Vec<(&str, Vec<(String, Meta)>)> = vec![
        ("no tokens", with("tokenizer.ggml.tokens", None)),
        (
            "tokens that are not strings",
            with("tokenizer.ggml.tokens", Some(Meta::U32(7))),
        ),
        ("no merges", with("tokenizer.ggml.merges", None)),
        (
            "a merge without a space",
            with(
                "tokenizer.ggml.merges",
                Some(Meta::Strings(vec!["ab".into()])),
            ),
        ),
        (
            "a merge of unknown tokens",
            with(
                "tokenizer.ggml.merges",
                Some(Meta::Strings(vec!["x y".into()])),
            ),
        ),
        (
            "an unknown tokenizer model",
            with("tokenizer.ggml.model", Some(Meta::Str("bert".into()))),
        ),
        (
            "a model name that is a number",
            with("tokenizer.ggml.model", Some(Meta::U32(2))),
        ),
    ];
    for (name, meta) in &cases {
        h.err(name, load(meta, &name.replace(' ', "_")));
    }
    let mut m = base.clone();
    m.push((s("tokenizer.ggml.bos_token_id"), Meta::U64(u64::MAX)));
    h.ok("a BOS id past the vocabulary (ignored)", load(&m, "bos"));
    let many = ["a", "b", "ab"]
        .map(String::from)
        .into_iter()
        .chain((0..200_000).map(|i| format!("t{i}")));
    let m = with("tokenizer.ggml.tokens", Some(Meta::Strings(many.collect())));
    h.ok("200 000 tokens", load(&m, "many"));
    h.finish();
}
