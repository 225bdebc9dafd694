//! Models and tokenizers from bytes held in memory (a download, as in the browser, where no
//! file can be mapped): SmolLM2's GGUF read from a `Vec<u8>` gives the same tokenizer ids and
//! greedy tokens as the memory-mapped file; MiniLM's `tokenizer.json` from bytes encodes as
//! from the file; junk bytes are errors naming the stand-in name.

use ember_core::{DType, Device};
use ember_models::{AutoModelForCausalLM, GenerateOpts, Tokenizer, generate};
use ember_testing::asset;
use ember_weights::GgufFile;

#[test]
fn a_gguf_from_bytes_runs_as_the_mapped_file() {
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let mapped = GgufFile::open(&path).unwrap();
    let held = GgufFile::from_bytes(std::fs::read(&path).unwrap(), "download.gguf").unwrap();
    assert_eq!(held.path().to_str(), Some("download.gguf"));
    let (t1, t2) = (
        Tokenizer::from_gguf(&mapped).unwrap(),
        Tokenizer::from_gguf(&held).unwrap(),
    );
    let text = "The capital of France is";
    let ids = t1.encode(text, false).unwrap();
    assert_eq!(t2.encode(text, false).unwrap(), ids);
    let opts = GenerateOpts {
        max_new_tokens: 8,
        ..Default::default()
    };
    let run = |g: &GgufFile| {
        let m = AutoModelForCausalLM::from_gguf(g, Device::Cpu, DType::F32).unwrap();
        generate(&m, &ids, Device::Cpu, &opts, |_| {}).unwrap()
    };
    assert_eq!(run(&held), run(&mapped));
    let err = GgufFile::from_bytes(b"GGUF\x03\0\0\0trunc".to_vec(), "bad.gguf")
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad.gguf"), "{err}");
}

#[test]
fn a_tokenizer_json_from_bytes_encodes_as_the_file() {
    let Some(path) = asset("minilm/tokenizer.json") else {
        return;
    };
    let file = Tokenizer::from_file(&path).unwrap();
    let held = Tokenizer::from_bytes(&std::fs::read(&path).unwrap(), "tokenizer.json").unwrap();
    for text in ["A man is eating food.", "naïve café, 1234!"] {
        assert_eq!(
            held.encode(text, true).unwrap(),
            file.encode(text, true).unwrap()
        );
    }
    assert!(Tokenizer::from_bytes(b"{not json", "t.json").is_err());
    assert!(Tokenizer::from_bytes(&[0xff, 0xfe], "t.json").is_err());
}

#[test]
fn minilm_from_bytes_embeds_as_from_its_directory() {
    use ember_core::Tensor;
    use ember_models::Bert;
    let Some(dir) = asset("minilm") else { return };
    let from_dir = Bert::from_pretrained(&dir, Device::Cpu, DType::F32).unwrap();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let held = Bert::from_bytes(&config, weights, Device::Cpu, DType::F32).unwrap();
    let ids = Tensor::from_vec(
        vec![101i64, 1037, 2158, 2003, 5983, 2833, 1012, 102],
        &[1, 8],
        Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::ones(&[1, 8], DType::I64, Device::Cpu).unwrap();
    let (a, b) = (
        from_dir.embed(&ids, &mask).unwrap(),
        held.embed(&ids, &mask).unwrap(),
    );
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    assert!(Bert::from_bytes(b"{}", vec![0; 16], Device::Cpu, DType::F32).is_err());
}
