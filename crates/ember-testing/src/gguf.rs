//! A minimal GGUF v3 writer for tests: metadata of the common value types and F32 tensors, so
//! a test can build a small model file and then bend its metadata or shapes.
//!
//! ```
//! use ember_testing::gguf::{Meta, write};
//! let path = std::env::temp_dir().join(format!("doc-{}.gguf", std::process::id()));
//! let meta = vec![("general.architecture".to_string(), Meta::Str("llama".into()))];
//! write(&path, &meta, &[("w".to_string(), vec![2, 3], vec![0.0; 6])]).unwrap();
//! assert_eq!(&std::fs::read(&path).unwrap()[..4], b"GGUF");
//! ```

use std::path::Path;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    /// type 4
    U32(u32),
    /// type 5
    I32(i32),
    /// type 6
    F32(f32),
    /// type 8
    Str(String),
    /// type 10
    U64(u64),
    /// type 9 of type 8
    Strings(Vec<String>),
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &Meta) {
    let (ty, body): (u32, Vec<u8>) = match v {
        Meta::U32(x) => (4, x.to_le_bytes().to_vec()),
        Meta::I32(x) => (5, x.to_le_bytes().to_vec()),
        Meta::F32(x) => (6, x.to_le_bytes().to_vec()),
        Meta::U64(x) => (10, x.to_le_bytes().to_vec()),
        Meta::Str(s) => {
            let mut b = Vec::new();
            string(&mut b, s);
            (8, b)
        }
        Meta::Strings(items) => {
            let mut b = Vec::new();
            b.extend(8u32.to_le_bytes());
            b.extend((items.len() as u64).to_le_bytes());
            for s in items {
                string(&mut b, s);
            }
            (9, b)
        }
    };
    out.extend(ty.to_le_bytes());
    out.extend(body);
}

/// Writes a GGUF v3 file: `metadata` in order, then `tensors` as `(name, shape in PyTorch
/// order, f32 values)`, aligned to 32 bytes.
pub fn write(
    path: &Path,
    metadata: &[(String, Meta)],
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) -> std::io::Result<()> {
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        string(&mut out, k);
        value(&mut out, v);
    }
    let mut offset = 0u64;
    for (name, shape, values) in tensors {
        string(&mut out, name);
        out.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            out.extend((*d as u64).to_le_bytes()); // innermost first
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend(offset.to_le_bytes());
        offset += (values.len() * 4).next_multiple_of(32) as u64;
    }
    out.resize(out.len().next_multiple_of(32), 0);
    for (_, _, values) in tensors {
        for v in values {
            out.extend(v.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(32), 0);
    }
    std::fs::write(path, out)
}
