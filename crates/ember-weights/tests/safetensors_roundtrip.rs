//! Saving and loading safetensors: round trips, dtype conversion, sharded checkpoints.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ember_core::{DType, Device, Generator, Tensor};
use ember_weights::{Checkpoint, save_safetensors};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample() -> Vec<(String, Tensor)> {
    let mut g = Generator::new(1);
    let d = Device::Cpu;
    vec![
        (
            "a.weight".into(),
            Tensor::randn_with(&mut g, &[4, 3], DType::F32, d).unwrap(),
        ),
        (
            "a.bias".into(),
            Tensor::randn_with(&mut g, &[4], DType::F64, d).unwrap(),
        ),
        (
            "b.half".into(),
            Tensor::randn_with(&mut g, &[2, 2], DType::F16, d).unwrap(),
        ),
        (
            "b.brain".into(),
            Tensor::randn_with(&mut g, &[3], DType::BF16, d).unwrap(),
        ),
        (
            "c.ids".into(),
            Tensor::from_vec(vec![1i64, -5, 7], &[3], d).unwrap(),
        ),
        (
            "c.mask".into(),
            Tensor::from_vec(vec![true, false], &[2], d).unwrap(),
        ),
    ]
}

fn refs(v: &[(String, Tensor)]) -> Vec<(&str, &Tensor)> {
    v.iter().map(|(n, t)| (n.as_str(), t)).collect()
}

#[test]
fn round_trip_keeps_every_dtype_and_value() {
    let dir = tmpdir("roundtrip");
    let path = dir.join("model.safetensors");
    let tensors = sample();
    save_safetensors(&path, &refs(&tensors), None, None).unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert_eq!(ckpt.names().len(), tensors.len());
    for (name, t) in &tensors {
        let back = ckpt.load(name, Device::Cpu, None).unwrap();
        assert_eq!(back.dtype(), t.dtype(), "{name}");
        assert_eq!(back.dims(), t.dims(), "{name}");
        assert_eq!(
            back.to_vec::<f64>().unwrap(),
            t.to_vec::<f64>().unwrap(),
            "{name}"
        );
    }
    // No temporary file is left behind.
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn dtypes_convert_on_save_and_load() {
    let dir = tmpdir("convert");
    let path = dir.join("w.safetensors");
    let tensors = sample();
    save_safetensors(&path, &refs(&tensors), Some(DType::BF16), None).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    let w = ckpt.load("a.weight", Device::Cpu, None).unwrap();
    assert_eq!(w.dtype(), DType::BF16);
    assert_eq!(
        ckpt.load("c.ids", Device::Cpu, None).unwrap().dtype(),
        DType::I64
    );
    let up = ckpt
        .load("a.weight", Device::Cpu, Some(DType::F32))
        .unwrap();
    let orig = tensors[0].1.to_vec::<f32>().unwrap();
    for (a, b) in up.to_vec::<f32>().unwrap().iter().zip(&orig) {
        assert!((a - b).abs() <= 1e-2 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let dir = tmpdir("sharded");
    let tensors = sample();
    save_safetensors(&dir.join("single.safetensors"), &refs(&tensors), None, None).unwrap();
    let mut weight_map = BTreeMap::new();
    for (k, chunk) in tensors.chunks(2).enumerate() {
        let file = format!("model-{:05}-of-00003.safetensors", k + 1);
        save_safetensors(&dir.join(&file), &refs(chunk), None, None).unwrap();
        for (name, _) in chunk {
            weight_map.insert(name.clone(), file.clone());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = Checkpoint::open(&dir).unwrap();
    let single = Checkpoint::open(dir.join("single.safetensors")).unwrap();
    assert_eq!(sharded.names(), single.names());
    for name in single.names() {
        let a = sharded.load(name, Device::Cpu, None).unwrap();
        let b = single.load(name, Device::Cpu, None).unwrap();
        assert_eq!(
            a.to_vec::<f64>().unwrap(),
            b.to_vec::<f64>().unwrap(),
            "{name}"
        );
    }
    // An index whose shard names try to leave the directory is refused.
    let evil = serde_json::json!({"weight_map": {"a.weight": "../etc/passwd"}});
    std::fs::write(dir.join("evil.index.json"), evil.to_string()).unwrap();
    let e = Checkpoint::open(dir.join("evil.index.json")).unwrap_err();
    assert!(e.to_string().contains("not a plain file name"), "{e}");
}

#[test]
fn pytorch_written_files_load() {
    // ops.safetensors was written by PyTorch's safetensors (scripts/make_fixtures.py).
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ops.safetensors");
    let ckpt = Checkpoint::open(&path).unwrap();
    assert!(ckpt.names().len() > 1000);
    let t = ckpt.load("matmul_0/out0", Device::Cpu, None).unwrap();
    assert_eq!(t.dims(), &[7, 5]);
}
