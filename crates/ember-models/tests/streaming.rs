//! Streaming text: a character spanning several tokens is held back until whole and nothing
//! is dropped (the streamed pieces concatenate to the full decode); `generate_with`'s
//! callback stops generation or fails it.

use ember_core::{DType, Device, Error};
use ember_models::{Flow, GenerateOpts, Llama, TextStream, Tokenizer, generate_with};
use ember_testing::{asset, fixtures_dir};
use ember_weights::GgufFile;

/// Non-ASCII text whose characters take 2 to 4 bytes.
const TEXTS: &[&str] = &[
    "ligature œ)\n\nmise en œuvre",
    "naïve café — 日本語のテキスト 🎉🚀 done",
    "  spaces\t\ttabs   and 12345 digits ½ ∑ ∞",
];

/// A byte-level BPE tokenizer without merges: every byte is its own token, so every
/// multi-byte character spans several tokens.
fn byte_tokenizer() -> Tokenizer {
    // GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others map to
    // 256, 257, ... in byte order.
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut next = 256;
    let vocab: serde_json::Map<String, serde_json::Value> = (0..256u32)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            (char::from_u32(c).unwrap().to_string(), serde_json::json!(b))
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "vocab": vocab, "merges": []}
    });
    let path = std::env::temp_dir().join(format!("ember-byte-tok-{}.json", std::process::id()));
    std::fs::write(&path, json.to_string()).unwrap();
    let tok = Tokenizer::from_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    tok
}

/// Streams `ids` one by one: the pieces, then what `finish` returns.
fn stream(tok: &Tokenizer, ids: &[i64]) -> (Vec<String>, String) {
    let mut s = TextStream::new(tok);
    let pieces = ids.iter().map(|&i| s.push(i).unwrap()).collect();
    (pieces, s.finish().unwrap())
}

#[test]
fn characters_split_across_tokens_stream_whole_and_nothing_is_dropped() {
    let tok = byte_tokenizer();
    for text in TEXTS {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len(), "one token per byte");
        let (pieces, rest) = stream(&tok, &ids);
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat() + &rest, *text);
        assert_eq!(rest, "", "a whole text leaves nothing behind");
    }
    // A text cut inside a character: held back, then given by `finish` as U+FFFD.
    let ids = tok.encode("é", false).unwrap();
    let (pieces, rest) = stream(&tok, &ids[..1]);
    assert_eq!(
        (pieces.concat(), rest),
        (String::new(), "\u{FFFD}".to_string())
    );
}

#[test]
fn smollm2_streams_non_ascii_text_exactly() {
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    for text in TEXTS {
        let ids = tok.encode(text, false).unwrap();
        let (pieces, rest) = stream(&tok, &ids);
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat() + &rest, tok.decode(&ids, true).unwrap());
    }
}

#[test]
fn a_callback_stops_generation_or_fails_it() {
    let model = Llama::from_pretrained(
        fixtures_dir().join("models/tiny-llama"),
        Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let opts = GenerateOpts {
        max_new_tokens: 10,
        ..Default::default()
    };
    let mut seen = 0;
    let out = generate_with(&model, &[1, 5, 9], Device::Cpu, &opts, |_| {
        seen += 1;
        Ok(if seen == 3 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    })
    .unwrap();
    assert_eq!(out.len(), 3);
    let err = generate_with(&model, &[1, 5, 9], Device::Cpu, &opts, |_| {
        Err(Error::data("viewer", "the reader went away"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("the reader went away"), "{err}");
}
