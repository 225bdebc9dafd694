//! Tensors over memory shared with other libraries: what NumPy's and DLPack's zero-copy
//! exchange is built on (`ember`'s Python package).

use crate::kernels::cpu::shared;
use crate::{DType, Device, Error, Result, Tensor};

impl Tensor {
    /// The bytes of the values in place (row-major, native byte order) when this is a
    /// contiguous CPU tensor of a float dtype or int64; `None` for strided views, bool, other
    /// devices and graph handles (make a contiguous copy first). The bytes stay valid and
    /// unchanged while `self` is borrowed: Ember writes a buffer in place only when nothing
    /// else holds it.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0], &[2], Device::Cpu)?;
    /// assert_eq!(t.cpu_bytes().unwrap(), &[0, 0, 128, 63, 0, 0, 0, 64]);
    /// assert!(t.unsqueeze(0)?.transpose(0, 1)?.cpu_bytes().is_some()); // still contiguous
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn cpu_bytes(&self) -> Option<&[u8]> {
        if self.device() != Device::Cpu || self.is_graph_only() {
            return None;
        }
        shared::contiguous_bytes(self.prim_ref())
    }

    /// A CPU tensor of `shape` and `dtype` over `bytes` (e.g. `bytes::Bytes::from_owner` of
    /// a NumPy buffer), shared without a copy when it can be: a float dtype or int64 with the
    /// bytes aligned to the element size; otherwise (bool, unaligned) the values are copied.
    /// Ember never writes into the shared bytes (an in-place op copies them first).
    ///
    /// ```
    /// # use ember_core::{Tensor, DType};
    /// let raw = bytes::Bytes::from(vec![0u8, 0, 128, 63, 0, 0, 0, 64]);
    /// let t = Tensor::from_shared_bytes(raw.clone(), &[2], DType::F32)?;
    /// assert_eq!(t.to_vec::<f32>()?, vec![1.0, 2.0]);
    /// assert_eq!(t.cpu_bytes().unwrap().as_ptr(), raw.as_ptr()); // the same memory
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn from_shared_bytes(bytes: bytes::Bytes, shape: &[usize], dtype: DType) -> Result<Tensor> {
        const OP: &str = "from_shared_bytes";
        let numel = crate::base::shape::checked_numel(OP, shape)?;
        if numel.checked_mul(dtype.size_in_bytes()) != Some(bytes.len()) {
            return Err(Error::data(
                OP,
                format!(
                    "{} bytes do not hold shape {shape:?} of {dtype} ({numel} elements of {} bytes)",
                    bytes.len(),
                    dtype.size_in_bytes()
                ),
            ));
        }
        if numel == 0 {
            return Tensor::zeros(shape, dtype, Device::Cpu);
        }
        let pshape = if shape.is_empty() {
            vec![1]
        } else {
            shape.to_vec()
        };
        if let Some(p) = shared::over_bytes(bytes.clone(), &pshape, dtype) {
            return Ok(Tensor::from_prim(p, shape.to_vec(), Device::Cpu));
        }
        // Bool or unaligned: read the values out.
        let s: &[u8] = &bytes;
        match dtype {
            DType::Bool => {
                Tensor::from_vec(s.iter().map(|&b| b != 0).collect(), shape, Device::Cpu)
            }
            DType::F32 => Tensor::from_vec(read::<f32>(s), shape, Device::Cpu),
            DType::F64 => Tensor::from_vec(read::<f64>(s), shape, Device::Cpu),
            DType::F16 => Tensor::from_vec(read::<half::f16>(s), shape, Device::Cpu),
            DType::BF16 => Tensor::from_vec(read::<half::bf16>(s), shape, Device::Cpu),
            DType::I64 => Tensor::from_vec(read::<i64>(s), shape, Device::Cpu),
        }
    }
}

/// Unaligned bytes as values of `T`.
fn read<T: bytemuck::Pod>(s: &[u8]) -> Vec<T> {
    s.chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}
