//! The base layer: what every other layer names and nothing computes with. Dtypes and host
//! elements, shapes, devices, the one error type, memory bounds for sizes from outside, the
//! random generator, the clock, the autocast mode, the options of the fused ops, the op
//! tables (one row per elementwise op or reduction), and quantized weights as GGUF stores
//! them. It imports from no other layer.

pub(crate) mod autocast_mode;
pub mod clock;
pub(crate) mod device;
pub(crate) mod dtype;
pub(crate) mod error;
pub(crate) mod malloc;
pub mod memory;
pub(crate) mod options;
pub mod quant;
pub(crate) mod random;
pub(crate) mod shape;
pub(crate) mod tables;
