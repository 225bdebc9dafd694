//! Any bytes given to the NumPy readers, as an `.npy` file and as an `.npz` archive, give
//! tensors or an error, never a panic.
#![no_main]

use ember_weights::{read_npy, read_npz};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ember-fuzz-npy-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let _ = read_npy(&path);
    let _ = read_npz(&path);
});
