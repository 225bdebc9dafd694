//! Dequantization of GGUF tensors to f32: plain floats converted, GGML's block formats
//! decoded by [`ember_core::quant`] (llama.cpp's layouts, checked against the `gguf` Python
//! package in the tests).

use ember_core::quant::dequantize_blocks;
use half::{bf16, f16};

use crate::gguf::GgufType;

/// Decodes `n` elements of `ty` from `bytes` into f32. `bytes` must hold exactly
/// `ty.bytes_for(n)` bytes (checked by the GGUF reader); returns `None` otherwise.
pub fn dequantize(ty: GgufType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    if ty.bytes_for(n)? != bytes.len() {
        return None;
    }
    Some(match ty {
        GgufType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgufType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgufType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgufType::Quant(format) => dequantize_blocks(format, bytes)?,
    })
}
