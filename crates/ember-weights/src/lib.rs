//! Reading and writing model weights.
//!
//! - [`Checkpoint`]: safetensors files, memory-mapped and read lazily; a single file, a
//!   directory, or a sharded checkpoint through `model.safetensors.index.json`; tensors are
//!   converted to the dtype asked for.
//! - [`save_safetensors`]: writes atomically (temp file, fsync, rename), converting dtypes.
//! - [`GgufFile`]: GGUF v2/v3 header, metadata and tensor infos; tensors dequantized (F32,
//!   F16, BF16 and every block format of `ember_core::quant` (Q2_K to Q8_0)) or kept in their blocks.
//! - [`save_gguf`]: GGUF v3 files, tensors dense or quantized, written atomically.
//!
//! Every length, offset, dtype and shape read from a file is checked before use: a truncated
//! or hostile file gives an [`Error::Format`](ember_core::Error::Format), never a panic or
//! an out-of-bounds read.
#![warn(missing_docs)]

mod atomic;
mod gguf;
mod gguf_write;
mod kind;
mod npy;
mod quant;
mod safetensors_io;
mod storage;
mod text;

pub use atomic::write_atomic;
pub use gguf::{GgufFile, GgufTensorInfo, GgufTensors, GgufType, GgufValue};
pub use gguf_write::{GgufTensorData, save_gguf};
pub use kind::{FileKind, file_kind};
pub use npy::{read_npy, read_npz};
pub use quant::dequantize;
pub use safetensors_io::{Checkpoint, save_safetensors};
pub use text::read_text;
