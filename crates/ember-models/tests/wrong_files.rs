//! A file of the wrong kind handed to a loader is recognised by its magic bytes, and the error
//! names the loader that takes it: a directory to `GgufFile::open`, a GGUF file to
//! `Checkpoint::open`, `from_pretrained` or `Tokenizer::from_file`, a directory holding only a
//! GGUF to `from_pretrained`, PyTorch's zip and pickle files, a safetensors file to the GGUF
//! reader. Each is an `Err` within a second, no panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember_core::{DType, Device};
use ember_models::{AutoModelForCausalLM, Tokenizer};
use ember_testing::fixtures_dir;
use ember_testing::hostile::Hostile;
use ember_weights::{Checkpoint, FileKind, GgufFile, file_kind};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-wrong-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `r`'s error message, which must contain every one of `want`.
fn says<T>(what: &str, r: &ember_core::Result<T>, want: &[&str]) -> String {
    let Err(e) = r else {
        panic!("{what}: loaded, expected an error");
    };
    let msg = e.to_string();
    for w in want {
        assert!(msg.contains(w), "{what}: {msg:?} does not say {w:?}");
    }
    msg
}

#[test]
fn wrong_kinds_of_file_name_the_right_loader() {
    let fixtures = fixtures_dir();
    let gguf = fixtures.join("tiny.gguf");
    let hf_dir = fixtures.join("models/tiny-gpt2");
    let st = hf_dir.join("model.safetensors");
    let tmp = scratch();
    // A directory holding only a GGUF file, and the GGUF under a name without its extension.
    let gguf_dir = tmp.join("only-gguf");
    std::fs::create_dir_all(&gguf_dir).unwrap();
    std::fs::copy(&gguf, gguf_dir.join("model.gguf")).unwrap();
    let renamed = tmp.join("model.bin");
    std::fs::copy(&gguf, &renamed).unwrap();
    let zip = tmp.join("pytorch_model.bin");
    std::fs::write(&zip, b"PK\x03\x04archive/data.pkl....").unwrap();
    let pickle = tmp.join("old_pytorch_model.bin");
    std::fs::write(&pickle, b"\x80\x02}q\x00(X\x06\x00\x00\x00weight").unwrap();
    assert_eq!(file_kind(&gguf), FileKind::Gguf);
    assert_eq!(file_kind(&st), FileKind::Safetensors);

    let cpu = Device::Cpu;
    let mut h = Hostile::new("wrong kinds of file", Duration::from_secs(1), 512.0);
    let mut messages = Vec::new();
    let mut check = |what: &str, msg: String| {
        eprintln!("{what}: {msg}");
        messages.push(msg);
    };
    h.err("GgufFile::open(a model directory)", || {
        let r = GgufFile::open(&hf_dir);
        check(
            "gguf <- dir",
            says("gguf <- dir", &r, &["directory", "from_pretrained"]),
        );
        r
    });
    h.err("GgufFile::open(a directory with a GGUF)", || {
        let r = GgufFile::open(&gguf_dir);
        check(
            "gguf <- gguf dir",
            says("gguf <- gguf dir", &r, &["model.gguf", "from_gguf"]),
        );
        r
    });
    h.err("GgufFile::open(safetensors)", || {
        let r = GgufFile::open(&st);
        check(
            "gguf <- st",
            says("gguf <- st", &r, &["safetensors", "Checkpoint::open"]),
        );
        r
    });
    h.err("GgufFile::open(a pickle)", || {
        let r = GgufFile::open(&pickle);
        check(
            "gguf <- pickle",
            says("gguf <- pickle", &r, &["pickle", "safetensors"]),
        );
        r
    });
    h.err("Checkpoint::open(GGUF)", || {
        let r = Checkpoint::open(&gguf);
        check(
            "st <- gguf",
            says("st <- gguf", &r, &["GGUF", "GgufFile::open", "from_gguf"]),
        );
        r
    });
    h.err("Checkpoint::open(a directory with only a GGUF)", || {
        let r = Checkpoint::open(&gguf_dir);
        check(
            "st <- gguf dir",
            says("st <- gguf dir", &r, &["model.gguf", "from_gguf"]),
        );
        r
    });
    h.err("Checkpoint::open(PyTorch zip)", || {
        let r = Checkpoint::open(&zip);
        check("st <- zip", says("st <- zip", &r, &["zip", "safetensors"]));
        r
    });
    h.err("from_pretrained(a directory with only a GGUF)", || {
        let r = AutoModelForCausalLM::from_pretrained(&gguf_dir, cpu, DType::F32);
        check(
            "auto <- gguf dir",
            says(
                "auto <- gguf dir",
                &r,
                &["model.gguf", "from_gguf", "from_path"],
            ),
        );
        r
    });
    h.err("from_pretrained(a GGUF file)", || {
        let r = AutoModelForCausalLM::from_pretrained(&gguf, cpu, DType::F32);
        check(
            "auto <- gguf",
            says("auto <- gguf", &r, &["GgufFile::open", "from_gguf"]),
        );
        r
    });
    h.err("Tokenizer::from_file(GGUF)", || {
        let r = Tokenizer::from_file(&gguf);
        check(
            "tok <- gguf",
            says("tok <- gguf", &r, &["Tokenizer::from_gguf"]),
        );
        r
    });
    h.err("Tokenizer::from_file(a directory)", || {
        let r = Tokenizer::from_file(&hf_dir);
        check(
            "tok <- dir",
            says("tok <- dir", &r, &["tokenizer.json file"]),
        );
        r
    });
    // A GGUF under another name goes to the GGUF loader: from_path reads the bytes, not the
    // name (tiny.gguf holds tensors, not a whole model, so that loader refuses it).
    h.err("from_path(a GGUF named .bin)", || {
        let r = AutoModelForCausalLM::from_path(&renamed, cpu, DType::F32);
        check(
            "auto path <- gguf.bin",
            says("from_path", &r, &["from_gguf"]),
        );
        r
    });
    h.finish();
    assert!(
        messages.iter().all(|m| !m.contains("os error")),
        "{messages:?}"
    );
    let _ = std::fs::remove_dir_all(Path::new(&tmp));
}
