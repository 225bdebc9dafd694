//! Any bytes given to the safetensors loader give a checkpoint or an error, never a panic.
#![no_main]

use ember_core::{DType, Device};
use ember_weights::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ember-fuzz-st-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(ckpt) = Checkpoint::open(&path) {
        for name in ckpt.names() {
            let _ = ckpt.load(name, Device::Cpu, Some(DType::F32));
        }
    }
});
