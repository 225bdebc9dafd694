//! Writing GGUF v3 files: metadata of any [`GgufValue`], tensors as plain floats or in their
//! block formats, 32-byte alignment, written atomically.

use std::path::Path;

use ember_core::quant::QTensor;
use ember_core::{DType, Error, Result, Tensor};

use crate::gguf::{GgufType, GgufValue};
use crate::write_atomic;

const ALIGN: usize = 32;

/// One tensor to write: a float tensor (written as F32, or F16/BF16 when it has that
/// dtype) or quantized blocks.
pub enum GgufTensorData {
    /// Dense values, any shape.
    Dense(Tensor),
    /// Blocks `(rows, cols)`.
    Quantized(QTensor),
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn type_id(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn value(out: &mut Vec<u8>, v: &GgufValue) -> Result<()> {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(*x as u8),
        GgufValue::String(s) => string(out, s),
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(4, type_id);
            if items.iter().any(|i| type_id(i) != elem) {
                return Err(Error::data("save_gguf", "an array mixes value types"));
            }
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                value(out, i)?;
            }
        }
    }
    Ok(())
}

/// A tensor's GGUF type, shape (PyTorch order) and bytes.
fn encode(t: &GgufTensorData) -> Result<(GgufType, Vec<usize>, Vec<u8>)> {
    Ok(match t {
        GgufTensorData::Quantized(q) => (
            GgufType::Quant(q.format()),
            q.dims().to_vec(),
            q.bytes().to_vec(),
        ),
        GgufTensorData::Dense(t) => {
            let shape = t.shape();
            match t.dtype() {
                DType::F16 => {
                    let v = t.to_vec::<half::f16>()?;
                    (
                        GgufType::F16,
                        shape,
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    )
                }
                DType::BF16 => {
                    let v = t.to_vec::<half::bf16>()?;
                    (
                        GgufType::BF16,
                        shape,
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    )
                }
                _ => {
                    let v = t.to_dtype(DType::F32)?.to_vec::<f32>()?;
                    (
                        GgufType::F32,
                        shape,
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    )
                }
            }
        }
    })
}

/// Writes a GGUF v3 file: `metadata` in order, then `tensors` (names as given; shapes in
/// PyTorch order, written innermost first as GGUF stores them), each aligned to 32 bytes.
/// The file appears whole or not at all.
pub fn save_gguf(
    path: impl AsRef<Path>,
    metadata: &[(String, GgufValue)],
    tensors: &[(String, GgufTensorData)],
) -> Result<()> {
    let mut head = Vec::new();
    head.extend(b"GGUF");
    head.extend(3u32.to_le_bytes());
    head.extend((tensors.len() as u64).to_le_bytes());
    head.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        string(&mut head, k);
        head.extend(type_id(v).to_le_bytes());
        value(&mut head, v)?;
    }
    let mut data = Vec::new();
    for (name, t) in tensors {
        let (ty, shape, bytes) = encode(t)?;
        string(&mut head, name);
        head.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            head.extend((*d as u64).to_le_bytes());
        }
        head.extend(ty.id().to_le_bytes());
        head.extend((data.len() as u64).to_le_bytes());
        data.extend(bytes);
        data.resize(data.len().next_multiple_of(ALIGN), 0);
    }
    head.resize(head.len().next_multiple_of(ALIGN), 0);
    head.extend(data);
    write_atomic(path.as_ref(), &head)
}
