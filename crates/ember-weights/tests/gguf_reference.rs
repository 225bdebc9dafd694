//! The GGUF reader against the `gguf` Python package (`scripts/make_gguf_fixture.py`).

use std::path::PathBuf;

use ember_core::quant::QFormat;
use ember_core::{DType, Device};
use ember_weights::{Checkpoint, GgufFile, GgufType, GgufValue};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

#[test]
fn metadata_and_tensor_infos() {
    let g = GgufFile::open(fixture("tiny.gguf")).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.metadata["llama.block_count"], GgufValue::U32(2));
    assert_eq!(g.metadata["llama.rope.freq_base"].as_f64(), Some(10000.0));
    assert_eq!(g.metadata["general.name"].as_str(), Some("tiny"));
    assert_eq!(g.metadata["general.flag"], GgufValue::Bool(true));
    assert_eq!(g.metadata["general.i64"], GgufValue::I64(-7));
    assert_eq!(g.metadata["general.f64"], GgufValue::F64(0.5));
    match &g.metadata["tokenizer.ggml.tokens"] {
        GgufValue::Array(v) => assert_eq!(v[1].as_str(), Some("a")),
        other => panic!("tokens: {other:?}"),
    }
    let q4k = g.info("q4_k.weight").unwrap();
    assert_eq!(
        (q4k.shape.as_slice(), q4k.ty),
        (&[2usize, 512][..], GgufType::Quant(QFormat::Q4K))
    );
    assert_eq!(g.tensors.len(), 13);
}

#[test]
fn dequantization_matches_the_gguf_package() {
    let g = GgufFile::open(fixture("tiny.gguf")).unwrap();
    let reference = Checkpoint::open(fixture("tiny_gguf_ref.safetensors")).unwrap();
    for info in &g.tensors {
        let ours = g
            .load(&info.name, Device::Cpu, DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let theirs = reference
            .load(&info.name, Device::Cpu, None)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{}", info.name);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{} ({:?}) element {i}: ours {a}, gguf package {b}",
                info.name,
                info.ty
            );
        }
    }
}

/// Quantized tensors kept in their blocks dequantize to the same values as `load`, and the
/// plain-float ones are not offered as quantized.
#[test]
fn quantized_tensors_share_the_file_and_dequantize_identically() {
    let g = GgufFile::open(fixture("tiny.gguf")).unwrap();
    let mut seen = 0;
    for info in &g.tensors {
        let q = g.load_quantized(&info.name).unwrap();
        let GgufType::Quant(format) = info.ty else {
            assert!(q.is_none(), "{}", info.name);
            continue;
        };
        let q = q.unwrap();
        assert_eq!((q.format(), q.dims()), (format, info.shape.as_slice()));
        let dense = g.load(&info.name, Device::Cpu, DType::F32).unwrap();
        let back = q.dequantize(DType::F32, Device::Cpu).unwrap();
        assert_eq!(
            back.to_vec::<f32>().unwrap(),
            dense.to_vec::<f32>().unwrap()
        );
        seen += 1;
    }
    assert_eq!(seen, 10, "every block format of the fixture");
}
