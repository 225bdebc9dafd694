//! Hostile and broken files: every truncation, byte flips and lying size fields of a valid
//! safetensors file and a valid GGUF file must give an error or a correct load, never a panic
//! or an out-of-bounds read.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ember_core::{DType, Device, Tensor};
use ember_weights::{Checkpoint, GgufFile, save_safetensors};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Opens and fully loads a file; `Ok` whether it loaded or was refused, `Err` on a panic.
fn survives(path: &Path, load: &dyn Fn(&Path)) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| load(path))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn load_safetensors(path: &Path) {
    if let Ok(c) = Checkpoint::open(path) {
        for n in c.names() {
            let _ = c.load(n, Device::Cpu, Some(DType::F32));
        }
    }
}

fn load_gguf(path: &Path) {
    if let Ok(g) = GgufFile::open(path) {
        for t in &g.tensors {
            let _ = g.load(&t.name, Device::Cpu, DType::F32);
        }
    }
}

/// Every variant of `good`: truncations, byte flips, and size fields overwritten.
fn variants(good: &[u8], header_len: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..good.len() {
        out.push(good[..n].to_vec());
    }
    for i in 0..header_len.min(good.len()) {
        for mask in [0xFFu8, 0x80, 0x01] {
            let mut v = good.to_vec();
            v[i] ^= mask;
            out.push(v);
        }
    }
    let lies: [u64; 6] = [0, 1, 0x7FFF_FFFF, 1 << 40, u64::MAX, good.len() as u64];
    for at in 0..header_len.saturating_sub(8) {
        for lie in lies {
            let mut v = good.to_vec();
            v[at..at + 8].copy_from_slice(&lie.to_le_bytes());
            out.push(v);
        }
    }
    out
}

fn run_suite(name: &str, good: &[u8], header_len: usize, load: &dyn Fn(&Path)) -> usize {
    let path = tmp(name);
    let cases = variants(good, header_len);
    let mut panics = Vec::new();
    for (i, bytes) in cases.iter().enumerate() {
        std::fs::write(&path, bytes).unwrap();
        if let Err(msg) = survives(&path, load) {
            panics.push(format!("case {i} ({} bytes): {msg}", bytes.len()));
        }
    }
    assert!(
        panics.is_empty(),
        "{name}: {} panics, first: {:?}",
        panics.len(),
        &panics[..panics.len().min(5)]
    );
    eprintln!("{name}: {} corrupted variants, no panic", cases.len());
    cases.len()
}

#[test]
fn corrupted_safetensors_never_panic() {
    let path = tmp("good.safetensors");
    let a = Tensor::arange(0.0, 12.0, 1.0, DType::F32, Device::Cpu)
        .unwrap()
        .reshape(&[3, 4])
        .unwrap();
    let b = Tensor::from_vec(vec![1i64, 2], &[2], Device::Cpu).unwrap();
    let c = Tensor::ones(&[5], DType::F16, Device::Cpu).unwrap();
    save_safetensors(&path, &[("a", &a), ("b", &b), ("c", &c)], None, None).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header_len = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    run_suite("safetensors", &good, header_len, &load_safetensors);
    // The intact file still loads.
    let ok = Checkpoint::open(&path)
        .unwrap()
        .load("a", Device::Cpu, None)
        .unwrap();
    assert_eq!(ok.to_vec::<f32>().unwrap()[11], 11.0);
}

#[test]
fn corrupted_gguf_never_panics() {
    let good = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny.gguf"),
    )
    .unwrap();
    // The header (metadata and tensor infos) is the part before the first tensor's data.
    let header_len = good.len().min(1024);
    run_suite("gguf", &good, header_len, &load_gguf);
}
