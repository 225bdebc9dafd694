//! Any bytes given to the GGUF reader give a file or an error, never a panic.
#![no_main]

use ember_core::{DType, Device};
use ember_weights::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ember-fuzz-gguf-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(g) = GgufFile::open(&path) {
        for t in &g.tensors {
            let _ = g.load(&t.name, Device::Cpu, DType::F32);
        }
    }
});
